"""Benchmark: scene renderer frame times against a bare instanced draw of the same primitives.

For synthetic scenes of 1k/10k/100k patches × 1k/10k/100k edge pieces (100k × 100k only with
``--full``) it times, on a headless EGL context:

- ``static``: the fit-all view redrawn with nothing changed (edge layer cached);
- ``zoom/pan``: the camera moves every frame (edges re-tessellated at the current level of
  detail each frame);
- ``zoom/pan warp``: the same with ``moving=True`` (cached edge layer warped, as the UI does
  while animating);
- ``baseline``: the same primitives as plain instanced draws (solid quads for the patches,
  fixed 16-segment ribbons for every edge; no atlas, cache, level of detail or text), on the
  same camera path, in the same run.

Frame times are wall-clock per frame with ``glFinish`` (median and 95th percentile, ms); the
ratio is renderer median / baseline median.  Shared, noisy machines: compare ratios.  Each
measurement runs for ``--budget`` seconds (at least 3 frames, but a single frame when one takes
longer than 3 budgets, e.g. the 100k-edge baselines on software GL).

    python tools/bench_render.py [--full] [--size 1280x800] [--budget 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnvis_gl.render import Camera, SceneRenderer, create_context  # noqa: E402
from cnnvis_gl.render.synthetic import _pattern, synthetic_scene  # noqa: E402

BASE_VERT = """
#version 330 core
layout(location = 0) in vec2 in_corner;
layout(location = 1) in vec4 in_rect;
uniform mat3 u_view;
void main() {
    vec2 p = in_rect.xy + in_corner * in_rect.zw;
    gl_Position = vec4((u_view * vec3(p, 1.0)).xy, 0.0, 1.0);
}
"""
BASE_EDGE_VERT = """
#version 330 core
layout(location = 0) in vec4 in_p01;
layout(location = 1) in vec4 in_p23;
uniform mat3 u_view;
uniform vec2 u_viewport;
const int SEG = 16;
void main() {
    int seg = gl_VertexID >> 1;
    float side = (gl_VertexID & 1) == 0 ? -1.0 : 1.0;
    float t = float(seg) / float(SEG), s = 1.0 - t;
    vec2 a = in_p01.xy, b = in_p01.zw, c = in_p23.xy, d = in_p23.zw;
    vec2 p = s*s*s*a + 3.0*s*s*t*b + 3.0*s*t*t*c + t*t*t*d;
    vec2 dp = 3.0*s*s*(b-a) + 6.0*s*t*(c-b) + 3.0*t*t*(d-c) + vec2(1e-6, 0.0);
    vec2 tp = (mat2(u_view) * dp) * u_viewport;
    vec2 n = normalize(vec2(-tp.y, tp.x));
    vec2 q = (u_view * vec3(p, 1.0)).xy;
    gl_Position = vec4(q + n * side * 2.0 * 2.0 / u_viewport, 0.0, 1.0);
}
"""
BASE_FRAG = """
#version 330 core
uniform vec4 u_color;
out vec4 f_color;
void main() { f_color = u_color; }
"""


class PoolPatches:
    """Patch source cycling through 256 precomputed patterns (fast for 100k neurons)."""

    def __init__(self) -> None:
        self._pool: dict[int, np.ndarray] = {}

    def patches(self, name: str, k: int = 1, size: int = 32, neurons=None) -> np.ndarray:
        if size not in self._pool:
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
            self._pool[size] = np.stack(
                [_pattern(np.random.default_rng(i), xx, yy) for i in range(256)]
            )
        idx = np.asarray(neurons, dtype=np.int64) % 256
        return self._pool[size][idx][:, None].repeat(k, axis=1)


class Baseline:
    """The same primitives drawn plainly: solid instanced quads + fixed-segment ribbons."""

    def __init__(self, ctx, scene) -> None:
        self.ctx = ctx
        self.quad_prog = ctx.program(vertex_shader=BASE_VERT, fragment_shader=BASE_FRAG)
        self.edge_prog = ctx.program(vertex_shader=BASE_EDGE_VERT, fragment_shader=BASE_FRAG)
        corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
        self.quad = ctx.buffer(corners.tobytes())
        self.rects = ctx.buffer(np.ascontiguousarray(scene.neurons.rect, np.float32).tobytes())
        ctrl = np.ascontiguousarray(scene.edges.ctrl, np.float32).reshape(-1, 8)
        self.ctrl = ctx.buffer(ctrl.tobytes())
        self.n, self.e = len(scene.neurons.rect), len(ctrl)
        self.qvao = ctx.vertex_array(
            self.quad_prog, [(self.quad, "2f", "in_corner"), (self.rects, "4f /i", "in_rect")]
        )
        self.evao = ctx.vertex_array(self.edge_prog, [(self.ctrl, "4f 4f /i", "in_p01", "in_p23")])

    def draw(self, cam: Camera, viewport, fbo) -> None:
        import moderngl

        from cnnvis_gl.render.camera import mat3_bytes

        fbo.use()
        fbo.clear(0.1, 0.1, 0.1, 1.0)
        self.ctx.enable(moderngl.BLEND)
        m = mat3_bytes(cam.matrix(viewport))
        self.edge_prog["u_view"].write(m)
        self.edge_prog["u_viewport"].value = tuple(float(v) for v in viewport)
        self.edge_prog["u_color"].value = (0.3, 0.8, 0.4, 0.5)
        self.evao.render(moderngl.TRIANGLE_STRIP, vertices=34, instances=self.e)
        self.quad_prog["u_view"].write(m)
        self.quad_prog["u_color"].value = (0.6, 0.5, 0.7, 1.0)
        self.qvao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.n)

    def release(self) -> None:
        for o in (self.qvao, self.evao, self.quad, self.rects, self.ctrl, self.quad_prog,
                  self.edge_prog):  # fmt: skip
            o.release()


def camera_path(scene, viewport, frames: int) -> list[Camera]:
    """From the fit-all view, zoom in 4× towards a point while panning."""
    fit = Camera().fit(scene.bounds, viewport)
    x0, y0, x1, y1 = scene.bounds
    target = Camera(((x0 + x1) * 0.45, (y0 + y1) * 0.4), fit.zoom * 4.0)
    return [fit.lerp(target, i / max(frames - 1, 1)) for i in range(frames)]


def timed(fn, budget: float, min_frames: int = 3, max_frames: int = 40) -> np.ndarray:
    times = []
    start = time.perf_counter()
    i = 0
    while i < max_frames:
        spent = time.perf_counter() - start
        if (i >= min_frames and spent >= budget) or (i >= 1 and spent >= 3 * budget):
            break  # enough frames, or frames so slow that a few tell the story
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        i += 1
    return np.asarray(times) * 1000.0


def stats(ms: np.ndarray) -> tuple[float, float]:
    return float(np.median(ms)), float(np.percentile(ms, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="include 100k patches × 100k edges")
    ap.add_argument("--size", default="1280x800", help="viewport WxH")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--msaa", type=int, default=0)
    args = ap.parse_args()
    vw, vh = (int(v) for v in args.size.lower().split("x"))
    viewport = (vw, vh)
    ctx = create_context()
    print(f"# {ctx.info['GL_RENDERER']} | viewport {vw}x{vh} | msaa {args.msaa}")
    fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer(viewport, 4)])
    sizes = [1_000, 10_000, 100_000]
    rows = []
    header = (
        f"{'patches':>8} {'edges':>8} {'view':<14} {'median':>8} {'p95':>8} "
        f"{'base med':>9} {'base p95':>9} {'ratio':>6}  detail"
    )
    print(header)
    print("-" * len(header))
    for n_p in sizes:
        for n_e in sizes:
            if n_p == n_e == 100_000 and not args.full:
                continue
            t0 = time.perf_counter()
            scene = synthetic_scene(
                n_neurons=n_p, n_edges=n_e, n_rows=6, cluster_size=(20, 60), seed=1
            )
            t_scene = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = SceneRenderer(ctx, PoolPatches(), msaa=args.msaa)
            r.set_scene(scene)
            ctx.finish()
            t_upload = time.perf_counter() - t0
            base = Baseline(ctx, scene)
            path = camera_path(scene, viewport, 40)
            fit = path[0]

            def draw_static(i, r=r, fit=fit):
                r.draw(fit, viewport, target=fbo)
                ctx.finish()

            def draw_moving(i, r=r, path=path, moving=False):
                r.draw(path[i % len(path)], viewport, target=fbo, moving=moving)
                ctx.finish()

            def draw_base_static(i, base=base, fit=fit):
                base.draw(fit, viewport, fbo)
                ctx.finish()

            def draw_base_moving(i, base=base, path=path):
                base.draw(path[i % len(path)], viewport, fbo)
                ctx.finish()

            draw_static(0)  # warm up: first edge-layer render, shader caches
            res = {
                "static": timed(draw_static, args.budget),
                "zoom/pan": timed(draw_moving, args.budget),
                "zoom/pan warp": timed(lambda i: draw_moving(i, moving=True), args.budget),
            }
            lod = r.level_of_detail(fit, viewport)
            detail = (
                f"fit: {lod['edges']} edges × {lod['segments']} seg, "
                f"patch α {lod['patch_alpha']:.2f}; scene {t_scene:.1f}s, upload {t_upload:.1f}s"
            )
            b_static = stats(timed(draw_base_static, args.budget))
            b_moving = stats(timed(draw_base_moving, args.budget))
            for view, ms in res.items():
                med, p95 = stats(ms)
                bm, bp = b_static if view == "static" else b_moving
                line = (
                    f"{n_p:>8} {n_e:>8} {view:<14} {med:>8.1f} {p95:>8.1f} "
                    f"{bm:>9.1f} {bp:>9.1f} {med / bm:>6.2f}  {detail if view == 'static' else ''}"
                )
                print(line, flush=True)
                rows.append(line)
            base.release()
            r.release()
    fbo.release()
    ctx.release()


if __name__ == "__main__":
    main()
