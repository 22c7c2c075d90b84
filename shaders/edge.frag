#version 330 core
#include "common.glsl"
uniform vec4 u_pos;
uniform vec4 u_neg;
uniform float u_alpha;
in float v_across;
flat in float v_half;
flat in float v_alpha;
flat in float v_sign;
flat in int v_id;
out vec4 f_color;

void main() {
    float cover = clamp(v_half + 0.5 - abs(v_across), 0.0, 1.0);
#ifdef PICK
    if (cover < 0.5) discard;
    f_color = encode_id(KIND_EDGE, v_id);
#else
    vec4 c = v_sign >= 0.0 ? u_pos : u_neg;
    float a = c.a * u_alpha * v_alpha * cover;
    f_color = vec4(c.rgb * a, a);            // premultiplied: the edge layer is cached
#endif
}
