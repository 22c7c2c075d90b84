#version 330 core
// Bundled edges: one instance per cubic Bezier piece, tessellated here into a triangle strip
// of 2 * (u_segments + 1) vertices (gl_VertexID); width in pixels from |w|, anti-aliased by a
// 1-pixel feather on each side.
#include "common.glsl"
layout(location = 0) in vec4 in_p01;         // p0.xy, p1.xy (scene)
layout(location = 1) in vec4 in_p23;         // p2.xy, p3.xy
layout(location = 2) in float in_w;          // signed weight / max |w| of the scene
layout(location = 3) in float in_w_row;      // |weight| / max |w| of its pair of rows
layout(location = 4) in int in_src;          // source cluster (-1: a bundle node)
layout(location = 5) in int in_dst;          // destination cluster (-1: a bundle node)
layout(location = 6) in int in_id;           // index into Scene.edges

uniform int u_segments;
uniform float u_width_scene;                 // width at |w| = max, scene units
uniform float u_min_px;
uniform float u_floor_px;                  // a pair of rows' strongest edge is at least this wide (pixels)
uniform float u_max_px;
uniform float u_any_selection;

out float v_across;                          // signed distance from the centre line, pixels
flat out float v_half;
flat out float v_alpha;
flat out float v_sign;
flat out int v_id;

vec2 bez(float t, vec2 a, vec2 b, vec2 c, vec2 d) {
    float s = 1.0 - t;
    return s * s * s * a + 3.0 * s * s * t * b + 3.0 * s * t * t * c + t * t * t * d;
}

vec2 dbez(float t, vec2 a, vec2 b, vec2 c, vec2 d) {
    float s = 1.0 - t;
    return 3.0 * s * s * (b - a) + 6.0 * s * t * (c - b) + 3.0 * t * t * (d - c);
}

void main() {
    int seg = gl_VertexID >> 1;
    float side = (gl_VertexID & 1) == 0 ? -1.0 : 1.0;
    float t = float(seg) / float(u_segments);
    vec2 a = in_p01.xy, b = in_p01.zw, c = in_p23.xy, d = in_p23.zw;
    vec2 p = bez(t, a, b, c, d);
    vec2 tan_s = dbez(t, a, b, c, d);
    if (dot(tan_s, tan_s) < 1e-12) tan_s = d - a;
    // to pixels (y up, as clip space): the linear part of the view, scaled by the viewport
    vec2 tan_px = (mat2(u_view) * tan_s) * u_viewport;
    vec2 n = normalize(vec2(-tan_px.y, tan_px.x) + vec2(1e-9, 0.0));
    float w = max(abs(in_w) * u_width_scene * u_zoom, in_w_row * u_floor_px);
    float w_px = clamp(w, u_min_px, u_max_px);
    float off = 0.5 * w_px + 1.0;
    vec4 clip = to_clip(p);
    gl_Position = vec4(clip.xy + n * side * off * 2.0 / u_viewport, 0.0, 1.0);
    v_across = side * off;
    v_half = 0.5 * w_px;
    // emphasis: an edge is as visible as the more emphasised of its two clusters
    vec4 s0 = cluster_state(in_src);
    vec4 s1 = cluster_state(in_dst);
    float e = (in_src < 0) ? s1.y : (in_dst < 0) ? s0.y : max(s0.y, s1.y);
    float sel = max(s0.z, s1.z);
    float alpha = (u_any_selection > 0.5) ? ((sel > 0.5) ? 1.0 : u_dim * 0.6) : mix(u_dim * 0.6, 1.0, e);
    // thin edges fade instead of shrinking below the minimum width
    v_alpha = alpha * clamp(w / max(u_min_px, 1e-6), 0.35, 1.0);
    v_sign = in_w;
    v_id = in_id;
}
