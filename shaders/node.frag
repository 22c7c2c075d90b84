#version 330 core
#include "common.glsl"
uniform vec4 u_pos;
uniform vec4 u_neg;
uniform vec4 u_border;
uniform float u_premultiplied;               // 1 when drawn into the cached edge layer
in vec2 v_local;
flat in float v_r;
flat in float v_sign;
flat in float v_alpha;
flat in int v_index;
out vec4 f_color;

void main() {
    float d = length(v_local) - v_r;
    float cover = clamp(0.5 - d, 0.0, 1.0);
#ifdef PICK
    if (cover < 0.5) discard;
    f_color = encode_id(KIND_BUNDLE, v_index);
#else
    vec4 fill = v_sign > 0.0 ? u_pos : u_neg;
    float bw = clamp(v_r * 0.25, 0.75, 1.5);
    float inner = clamp(-d - bw + 0.5, 0.0, 1.0);
    vec4 c = mix(u_border, fill, inner);
    float a = c.a * cover * v_alpha;
    f_color = u_premultiplied > 0.5 ? vec4(c.rgb * a, a) : vec4(c.rgb, a);
#endif
}
