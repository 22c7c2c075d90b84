#version 330 core
uniform sampler2DArray u_atlas;
uniform float u_alpha;                       // level-of-detail fade (1 - the patches')

in vec2 v_uv;
flat in float v_layer;
flat in float v_alpha;
out vec4 f_color;

void main() {
    vec4 c = texture(u_atlas, vec3(v_uv, v_layer));
    f_color = vec4(c.rgb, c.a * v_alpha * u_alpha);
}
