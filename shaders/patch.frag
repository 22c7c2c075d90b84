#version 330 core
uniform sampler2D u_atlas;
in vec2 v_uv;
in float v_alpha;
out vec4 f_color;

void main() {
    vec4 c = texture(u_atlas, v_uv);
    f_color = vec4(c.rgb, c.a * v_alpha);
}
