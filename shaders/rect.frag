#version 330 core
#include "common.glsl"
in vec2 v_local;
flat in vec2 v_half;
flat in float v_radius;
flat in int v_kind;
flat in int v_cluster;
flat in vec3 v_color;
flat in vec3 v_summary;
flat in vec4 v_state;

uniform vec4 u_fill[4];
uniform vec4 u_border;
uniform vec4 u_selection;
uniform vec4 u_hover;
uniform float u_border_px;
uniform vec2 u_summary;                        // per facet: 0 = contents shown, 1 = summary fill
uniform int u_hover_cluster;

out vec4 f_color;

float sd_round_box(vec2 p, vec2 b, float r) {
    vec2 q = abs(p) - b + r;
    return min(max(q.x, q.y), 0.0) + length(max(q, 0.0)) - r;
}

void main() {
    float d = sd_round_box(v_local, v_half, v_radius);
    float cover = clamp(0.5 - d, 0.0, 1.0);
#ifdef PICK
    if (v_kind != 3 || cover < 0.5) discard;
    f_color = encode_id(KIND_CLUSTER, v_cluster);
#else
    vec4 fill = u_fill[v_kind];
    if (v_kind != 3) {
        f_color = vec4(fill.rgb, fill.a * cover);
        return;
    }
    fill.rgb = mix(fill.rgb, v_summary, v_state.x > 0.5 ? u_summary.y : u_summary.x);
    bool selected = v_state.z > 0.5;
    bool hovered = v_cluster == u_hover_cluster;
    vec4 border = mix(u_border, vec4(v_color, 1.0), 0.45);
    float bw = u_border_px;
    if (hovered) { border = u_hover; bw = u_border_px * 1.8; }
    if (selected) { border = u_selection; bw = u_border_px * 2.2; }
    bw = min(bw, min(v_half.x, v_half.y));
    float inner = clamp(-d - bw + 0.5, 0.0, 1.0);   // 1 inside the border
    vec4 c = mix(border, fill, inner);
    float emph = v_state.y;
    f_color = vec4(c.rgb, c.a * cover * mix(0.35 + 0.65 * u_dim, 1.0, emph));
#endif
}
