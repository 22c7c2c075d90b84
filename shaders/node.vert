#version 330 core
// In-between (bundle) nodes: instanced discs.
#include "common.glsl"
layout(location = 0) in vec2 in_corner;
layout(location = 1) in vec2 in_pos;         // centre, scene units
layout(location = 2) in float in_radius;     // scene units
layout(location = 3) in float in_sign;       // +1 / -1
layout(location = 4) in float in_state;      // emphasis flag
layout(location = 5) in int in_rank;         // rank of the node's strongest edge piece

uniform float u_min_px;
uniform int u_edge_count;                    // edges drawn (the strongest ones)

out vec2 v_local;                            // pixels from the centre
flat out float v_r;
flat out float v_sign;
flat out float v_alpha;
flat out int v_index;

void main() {
    if (in_rank >= u_edge_count) {           // all its edges are hidden
        gl_Position = CULLED;
        return;
    }
    float r = max(in_radius * u_zoom, u_min_px);
    vec2 off = (in_corner * 2.0 - 1.0) * (r + 1.0);
    vec4 c = to_clip(in_pos);
    gl_Position = vec4(c.xy + off * vec2(2.0, -2.0) / u_viewport, 0.0, 1.0);
    v_local = off;
    v_r = r;
    v_sign = in_sign;
    v_alpha = mix(u_dim, 1.0, in_state);
    v_index = gl_InstanceID;
}
