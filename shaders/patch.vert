#version 330 core
// Instanced quads of neuron patches: one instance per neuron, its image in a texture-array atlas.
// Self-contained (no #include): tests/test_package.py compiles this file as it is.
uniform mat3 u_view;                         // scene -> clip
uniform float u_zoom;                        // pixels per scene unit
uniform float u_dim;                         // opacity of de-emphasised neurons (theme)
uniform sampler2D u_cluster_state;           // per cluster: facet, emphasis, selected, spare

vec4 cluster_state(int i) {
    if (i < 0) return vec4(-1.0, 1.0, 0.0, 0.0);
    int w = textureSize(u_cluster_state, 0).x;
    return texelFetch(u_cluster_state, ivec2(i % w, i / w), 0);
}
layout(location = 0) in vec2 in_corner;      // unit quad corner, (0,0)..(1,1)
layout(location = 1) in vec4 in_rect;        // instance: x, y, w, h in scene units
layout(location = 2) in vec4 in_uv;          // instance: u0, v0, u1, v1 in the atlas page
layout(location = 3) in float in_layer;      // instance: atlas page
layout(location = 4) in int in_cluster;      // instance: cluster index
layout(location = 5) in vec2 in_state;       // instance: emphasis flag (class selection), selected

out vec2 v_uv;
out vec2 v_local;                            // pixels from the patch centre
flat out vec2 v_half;
flat out float v_layer;
flat out float v_alpha;
flat out float v_selected;
flat out int v_neuron;

void main() {
    vec4 st = cluster_state(in_cluster);
    if (st.x > 0.5) {                        // cluster shows its matrix
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume
        return;
    }
    vec2 p = in_rect.xy + in_corner * in_rect.zw;
    gl_Position = vec4((u_view * vec3(p, 1.0)).xy, 0.0, 1.0);
    v_uv = mix(in_uv.xy, in_uv.zw, in_corner);
    v_half = 0.5 * in_rect.zw * u_zoom;
    v_local = (in_corner - 0.5) * in_rect.zw * u_zoom;
    v_layer = in_layer;
    v_alpha = mix(u_dim, 1.0, min(in_state.x, st.y));
    v_selected = in_state.y;
    v_neuron = gl_InstanceID;
}
