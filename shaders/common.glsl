// Shared by the scene shaders: view transform, per-cluster state, pick-id encoding.
uniform mat3 u_view;                   // scene -> clip
uniform vec2 u_viewport;               // pixels
uniform float u_zoom;                  // pixels per scene unit
uniform sampler2D u_cluster_state;     // per cluster: facet, emphasis flag, selected flag, matrix summary
uniform float u_dim;                   // opacity of de-emphasised things (theme)

// KIND_NONE, KIND_CLUSTER, KIND_NEURON, KIND_BUNDLE, KIND_EDGE: #defines from Python
// (cnnvis_gl.render.pick.PickKind), so both sides number the pick kinds the same way

vec4 cluster_state(int i) {
    if (i < 0) return vec4(-1.0, 1.0, 0.0, 0.0);
    int w = textureSize(u_cluster_state, 0).x;
    return texelFetch(u_cluster_state, ivec2(i % w, i / w), 0);
}

vec4 to_clip(vec2 p) {
    return vec4((u_view * vec3(p, 1.0)).xy, 0.0, 1.0);
}

// a vertex outside the clip volume: drops the primitive
const vec4 CULLED = vec4(2.0, 2.0, 2.0, 1.0);

// RGBA8 pick colour: kind in R, index + 1 in G, B, A (24 bits)
vec4 encode_id(int kind, int index) {
    int i = index + 1;
    return vec4(float(kind), float((i >> 16) & 255), float((i >> 8) & 255), float(i & 255)) / 255.0;
}
