#version 330 core
// Semantic zoom, far out: a cluster's representative neurons as large tiles (render/mosaic.py).
#include "common.glsl"
layout(location = 0) in vec2 in_corner;      // unit quad corner, (0,0)..(1,1)
layout(location = 1) in vec4 in_rect;        // instance: tile x, y, w, h in scene units
layout(location = 2) in vec4 in_uv;          // instance: u0, v0, u1, v1 in the atlas page
layout(location = 3) in float in_layer;      // instance: atlas page
layout(location = 4) in int in_cluster;      // instance: cluster index

out vec2 v_uv;
flat out float v_layer;
flat out float v_alpha;

void main() {
    vec4 st = cluster_state(in_cluster);
    if (st.x > 0.5) {                        // the cluster shows its matrix
        gl_Position = CULLED;
        return;
    }
    gl_Position = to_clip(in_rect.xy + in_corner * in_rect.zw);
    v_uv = mix(in_uv.xy, in_uv.zw, in_corner);
    v_layer = in_layer;
    v_alpha = mix(u_dim, 1.0, st.y);         // dimmed with its cluster by a class selection
}
