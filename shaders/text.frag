#version 330 core
uniform sampler2D u_sdf;
uniform vec4 u_color[4];
uniform vec4 u_halo;
uniform float u_halo_px;
in vec2 v_uv;
flat in float v_px_per_d;
flat in float v_alpha;
flat in int v_kind;
out vec4 f_color;

void main() {
    float d = texture(u_sdf, v_uv).r;
    float aa = clamp(0.6 / v_px_per_d, 0.005, 0.25);
    float fill = smoothstep(0.5 - aa, 0.5 + aa, d);
    float h = 0.5 - min(u_halo_px / v_px_per_d, 0.45);
    float halo = smoothstep(h - aa, h + aa, d) * u_halo.a;
    vec4 col = u_color[v_kind];
    float a = fill * col.a + halo * (1.0 - fill * col.a);
    if (a <= 0.0) discard;
    vec3 rgb = (col.rgb * fill * col.a + u_halo.rgb * halo * (1.0 - fill * col.a)) / a;
    f_color = vec4(rgb, a * v_alpha);
}
