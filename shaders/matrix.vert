#version 330 core
// Activation matrices: one instanced quad per neuron row; the fragment shader picks the cell.
#include "common.glsl"
layout(location = 0) in vec2 in_corner;
layout(location = 1) in vec4 in_rect;        // the neuron's row of cells, scene units
layout(location = 2) in int in_neuron;       // row of the activation texture (neuron index)
layout(location = 3) in int in_cluster;
layout(location = 4) in vec2 in_state;       // emphasis flag, selected

out vec2 v_cell;                             // cell coordinates: x in [0, K), y in [0, 1)
flat out vec2 v_size;                        // row size, pixels
flat out int v_neuron;
flat out float v_alpha;
flat out float v_selected;

uniform int u_k;

void main() {
    vec4 st = cluster_state(in_cluster);
    if (st.x < 0.5) {                        // cluster shows its learned features
        gl_Position = CULLED;
        return;
    }
    gl_Position = to_clip(in_rect.xy + in_corner * in_rect.zw);
    v_cell = vec2(in_corner.x * float(u_k), in_corner.y);
    v_size = in_rect.zw * u_zoom;
    v_neuron = in_neuron;
    v_alpha = mix(u_dim, 1.0, min(in_state.x, st.y));
    v_selected = in_state.y;
}
