#version 330 core
// Draws a cached layer (the edges) as one quad; u_warp maps it when the view moved since.
layout(location = 0) in vec2 in_corner;
uniform vec4 u_warp;                         // clip = corner_clip * warp.xy + warp.zw
out vec2 v_uv;
void main() {
    vec2 p = in_corner * 2.0 - 1.0;
    gl_Position = vec4(p * u_warp.xy + u_warp.zw, 0.0, 1.0);
    v_uv = in_corner;
}
