#version 330 core
// Self-contained (no #include): tests/test_package.py compiles this file as it is.
#ifdef PICK
vec4 encode_id(int kind, int index) {        // as in common.glsl
    int i = index + 1;
    return vec4(float(kind), float((i >> 16) & 255), float((i >> 8) & 255), float(i & 255)) / 255.0;
}
#endif                                       // (KIND_NEURON: a #define, render/pick.py)
uniform sampler2DArray u_atlas;
uniform float u_alpha;                       // level-of-detail fade
uniform vec4 u_selection;
uniform vec4 u_hover;
uniform int u_hover_neuron;

in vec2 v_uv;
in vec2 v_local;
flat in vec2 v_half;
flat in float v_layer;
flat in float v_alpha;
flat in float v_selected;
flat in int v_neuron;
out vec4 f_color;

void main() {
#ifdef PICK
    f_color = encode_id(KIND_NEURON, v_neuron);
#else
    vec4 c = texture(u_atlas, vec3(v_uv, v_layer));
    vec2 edge = v_half - abs(v_local);       // pixels to the nearest side
    float e = min(edge.x, edge.y);
    if (v_selected > 0.5 && e < 2.5) c = u_selection;
    else if (v_neuron == u_hover_neuron && e < 2.0) c = u_hover;
    f_color = vec4(c.rgb, c.a * v_alpha * u_alpha);
#endif
}
