#version 330 core
#include "common.glsl"
uniform sampler2D u_act;                     // R32F, neuron-major [N * K] laid out row by row
uniform sampler2D u_cmap;                    // 256 x M sequential colour scales
uniform float u_cmap_v;                      // row of the theme's scale
uniform sampler2D u_class_state;             // K x 1: 1 = selected column
uniform int u_k;
uniform float u_any_class;                   // 1 when some class is selected
uniform vec4 u_grid;
uniform vec4 u_selection;
uniform vec4 u_hover;
uniform int u_hover_neuron;

in vec2 v_cell;
flat in vec2 v_size;
flat in int v_neuron;
flat in float v_alpha;
flat in float v_selected;
out vec4 f_color;

void main() {
#ifdef PICK
    f_color = encode_id(KIND_NEURON, v_neuron);
#else
    int col = clamp(int(floor(v_cell.x)), 0, u_k - 1);
    int idx = v_neuron * u_k + col;
    int w = textureSize(u_act, 0).x;
    float a = texelFetch(u_act, ivec2(idx % w, idx / w), 0).r;
    vec3 c = texture(u_cmap, vec2((clamp(a, 0.0, 1.0) * 255.0 + 0.5) / 256.0, u_cmap_v)).rgb;
    float sel = texelFetch(u_class_state, ivec2(col, 0), 0).r;
    if (u_any_class > 0.5 && sel < 0.5) c = mix(c, u_grid.rgb, 0.65);
    // 1-pixel gaps between cells once they are large enough to read
    float cell_w = v_size.x / float(u_k);
    vec2 px = vec2(fract(v_cell.x) * cell_w, v_cell.y * v_size.y);
    float gap = 0.0;
    if (cell_w >= 5.0) gap = max(gap, 1.0 - clamp(px.x, 0.0, 1.0));
    if (v_size.y >= 5.0) gap = max(gap, 1.0 - clamp(px.y, 0.0, 1.0));
    c = mix(c, u_grid.rgb, gap);
    // selected classes: their columns are framed in the selection colour
    if (u_any_class > 0.5 && sel > 0.5 && cell_w >= 5.0) {
        float fx = fract(v_cell.x) * cell_w;
        if (fx < 1.5 || fx > cell_w - 1.0) c = u_selection.rgb;
    }
    float x = v_cell.x * cell_w;             // pixels from the row's left side
    float e = min(min(x, v_size.x - x), min(px.y, v_size.y - px.y));
    if (v_selected > 0.5 && e < 2.0) c = u_selection.rgb;
    else if (v_neuron == u_hover_neuron && e < 1.5) c = u_hover.rgb;
    f_color = vec4(c, v_alpha);
#endif
}
