#version 330 core
// Signed-distance-field text: one instance per glyph.
#include "common.glsl"
layout(location = 0) in vec2 in_corner;
layout(location = 1) in vec2 in_anchor;      // label anchor, scene units
layout(location = 2) in vec4 in_box;         // glyph box relative to the anchor, em units, y down
layout(location = 3) in vec4 in_uv;
layout(location = 4) in float in_size;       // em size, scene units
layout(location = 5) in int in_kind;         // 0 row, 1 cluster, 2 class, 3 other
layout(location = 6) in int in_cluster;      // cluster index, -1 for none
layout(location = 7) in float in_show;       // the least zoom the label is drawn at (0: any)

uniform float u_min_px[4];                   // labels never drawn smaller than this (pixels)
uniform float u_hide_px[4];                  // labels fade out below this size (pixels)
uniform float u_px_per_em_unit;              // 2 * spread / em: distance-field range in em

out vec2 v_uv;
flat out float v_px_per_d;                   // screen pixels per unit of the distance field
flat out float v_alpha;
flat out int v_kind;

void main() {
    float s_px = in_size * u_zoom;
    float scale = max(s_px, u_min_px[in_kind]);
    float hide = u_hide_px[in_kind];
    v_alpha = hide > 0.0 ? smoothstep(0.85 * hide, hide, s_px) : 1.0;
    if (in_show > 0.0) v_alpha *= smoothstep(in_show, 1.12 * in_show, u_zoom);  // (fades in)
    vec4 st = cluster_state(in_cluster);
    if (in_kind == 2 && in_cluster >= 0 && st.x < 0.5) v_alpha = 0.0;  // matrix facet only
    v_alpha *= mix(u_dim, 1.0, st.y);
    if (v_alpha <= 0.0) {
        gl_Position = CULLED;
        return;
    }
    vec2 g = mix(in_box.xy, in_box.zw, in_corner) * scale;   // pixels, y down
    vec4 c = to_clip(in_anchor);
    gl_Position = vec4(c.xy + g * vec2(2.0, -2.0) / u_viewport, 0.0, 1.0);
    v_uv = mix(in_uv.xy, in_uv.zw, in_corner);
    v_px_per_d = u_px_per_em_unit * scale;
    v_kind = in_kind;
}
