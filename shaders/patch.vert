#version 330 core
// Instanced quads of neuron patches: one instance per patch, its image in a texture atlas.
layout(location = 0) in vec2 in_corner;      // unit quad corner, (0,0)..(1,1)
layout(location = 1) in vec4 in_rect;        // instance: x, y, w, h in scene units
layout(location = 2) in vec4 in_uv;          // instance: u0, v0, u1, v1 in the atlas
layout(location = 3) in float in_alpha;      // instance: opacity (dimming by class selection)

uniform mat3 u_view;                          // scene -> clip space

out vec2 v_uv;
out float v_alpha;

void main() {
    vec2 p = in_rect.xy + in_corner * in_rect.zw;
    gl_Position = vec4((u_view * vec3(p, 1.0)).xy, 0.0, 1.0);
    v_uv = mix(in_uv.xy, in_uv.zw, in_corner);
    v_alpha = in_alpha;
}
