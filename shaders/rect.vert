#version 330 core
// Row bands and cluster frames: instanced rounded rectangles.
#include "common.glsl"
layout(location = 0) in vec2 in_corner;       // (0,0)..(1,1)
layout(location = 1) in vec4 in_rect;         // x, y, w, h (scene)
layout(location = 2) in vec3 in_color;        // cluster identity colour
layout(location = 3) in vec3 in_summary_f;    // mean patch colour (features facet, LOD)
layout(location = 4) in int in_kind;          // 0 row, 1 alternate row, 2 between row, 3 frame
layout(location = 5) in int in_cluster;       // -1 for rows

uniform float u_radius;                       // scene units
uniform sampler2D u_cmap;                     // colour scales, one per row
uniform float u_cmap_v;                       // row of the theme's scale

out vec2 v_local;                             // pixels from the rect centre
flat out vec2 v_half;                         // half size, pixels
flat out float v_radius;
flat out int v_kind;
flat out int v_cluster;
flat out vec3 v_color;
flat out vec3 v_summary;
flat out vec4 v_state;

void main() {
    vec4 st = cluster_state(in_cluster);
    vec2 p = in_rect.xy + in_corner * in_rect.zw;
    gl_Position = to_clip(p);
    v_half = 0.5 * in_rect.zw * u_zoom;
    v_local = (in_corner - 0.5) * in_rect.zw * u_zoom;
    v_radius = (in_kind == 3) ? min(u_radius * u_zoom, min(v_half.x, v_half.y)) : 0.0;
    v_kind = in_kind;
    v_cluster = in_cluster;
    v_color = in_color;
    v_summary = (st.x > 0.5)
        ? texture(u_cmap, vec2((clamp(st.w, 0.0, 1.0) * 255.0 + 0.5) / 256.0, u_cmap_v)).rgb
        : in_summary_f;
    v_state = st;
}
