"""Labels: signed-distance-field glyph quads, crisp at any zoom.

A label's ``(x, y)`` is its anchor: ``anchor`` left/center/right places it horizontally and the
text is centred vertically on ``y`` (middle of the capital height); ``size`` is the font size
(em) in scene units.  Row labels never shrink below ``min_px`` pixels; zoomed out so far that
they would cover each other, the lower ranked ones are left out (:func:`shown_from`).  Cluster
and class labels fade out when smaller than ``hide_px`` (level of detail).  A label's
``cluster`` (a cluster *id*) ties it to that cluster: it is dimmed with it, and class labels
(matrix column headers) show only while it is in the matrix facet.
"""

from __future__ import annotations

from collections.abc import Callable

import moderngl
import numpy as np

from ..layout.scene import CHAR_WIDTH, Label, Scene
from .camera import Camera
from .font import BASE_CHARS, GlyphAtlas, build_glyph_atlas
from .gl import set_uniform
from .state import UNIT_MAIN, Frame, Pass, SharedState
from .visual import Visual

GEOMETRY = np.dtype(
    [
        ("anchor", "f4", 2),
        ("box", "f4", 4),
        ("uv", "f4", 4),
        ("size", "f4"),
        ("kind", "i4"),
        ("cluster", "i4"),
        ("show", "f4"),  # the least zoom it is drawn at (:func:`shown_from`)
    ]
)
KINDS = {"row": 0, "cluster": 1, "class": 2}
MIN_PX = (11.0, 0.0, 0.0, 0.0)  # row, cluster, class, other
HIDE_PX = (0.0, 6.0, 11.0, 6.0)


class TextVisual(Visual):
    """All labels of the scene in one instanced draw."""

    VERT, FRAG = "text.vert", "text.frag"

    def __init__(self, ctx: moderngl.Context, shared: SharedState) -> None:
        super().__init__(ctx, shared)
        self.geometry: moderngl.Buffer | None = None
        self.font: GlyphAtlas | None = None
        self.font_tex: moderngl.Texture | None = None
        # cluster, then class labels come last: (kind, first glyph, largest size in scene units)
        self.tail: list[tuple[int, int, float]] = []

    def _ensure_font(self, labels: list[Label]) -> GlyphAtlas:
        chars = glyphs_for(labels)
        if self.font is None or not set(chars) <= set(self.font.advance):
            self.font = build_glyph_atlas(chars)
            img = self.font.image
            if self.font_tex is not None:
                self.font_tex.release()
            self.font_tex = self.ctx.texture((img.shape[1], img.shape[0]), 1, dtype="f1")
            self.font_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            self.uploads.texture("labels.font", self.font_tex, img)
        return self.font

    def upload(
        self, labels: list[Label], cluster_ids: np.ndarray | None = None, columns: np.ndarray | None = None
    ) -> None:
        """Lay out and upload ``labels``; ``cluster_ids`` (``Clusters.id``) maps label clusters;
        ``columns``: the rows row labels must not cover (:func:`shown_from`)."""
        font = self._ensure_font(labels)
        index = {int(c): i for i, c in enumerate(cluster_ids if cluster_ids is not None else ())}
        keys: dict[tuple[str, str], int] = {}  # many labels repeat (class names): laid out once
        which = np.fromiter(
            (keys.setdefault((lab.text, lab.anchor), len(keys)) for lab in labels), np.int64, len(labels)
        )
        boxes, uvs, widths = [], [], []
        for text, anchor in keys:
            b, uv, width = font.layout(text)
            widths.append(width)
            dx = {"left": 0.0, "center": -0.5 * width, "right": -width}.get(anchor, 0.0)
            boxes.append(b.reshape(-1, 4) + np.array([dx, font.cap_height / 2, dx, font.cap_height / 2], "f4"))
            uvs.append(np.asarray(uv, "f4").reshape(-1, 4))
        glyphs = np.array([len(b) for b in boxes], dtype=np.int64)
        first = np.cumsum(glyphs) - glyphs  # of each laid-out text, in the concatenation
        per = glyphs[which] if len(which) else np.zeros(0, np.int64)  # glyphs of each label
        idx = np.repeat(np.arange(len(labels)), per)  # the label of each glyph instance
        at = np.arange(len(idx)) - np.repeat(np.cumsum(per) - per, per)  # glyph within its label
        data = np.zeros(len(idx), dtype=GEOMETRY)
        self.tail = []
        if len(idx):
            src = first[which[idx]] + at
            data["box"] = np.concatenate(boxes)[src]
            data["uv"] = np.concatenate(uvs)[src]
            data["anchor"] = np.array([(lab.x, lab.y) for lab in labels], "f4")[idx]
            data["size"] = np.array([lab.size for lab in labels], "f4")[idx]
            data["kind"] = np.array([KINDS.get(lab.kind, 3) for lab in labels], "i4")[idx]
            cl = [index.get(int(getattr(lab, "cluster", -1)), -1) for lab in labels]
            data["cluster"] = np.array(cl, "i4")[idx]
            data["show"] = shown_from(labels, np.asarray(widths)[which], columns)[idx]
            # cluster and class (matrix column) labels last: zoomed out they are hidden, and the
            # draw then stops before them (most of a big network's glyphs: ~10 per cluster)
            rank = np.select([data["kind"] == KINDS["cluster"], data["kind"] == KINDS["class"]], [1, 2], 0)
            order = np.argsort(rank, kind="stable")
            data, rank = data[order], rank[order]
            for r, kind in ((1, KINDS["cluster"]), (2, KINDS["class"])):
                at = np.flatnonzero(rank == r)
                if len(at):
                    self.tail.append((kind, int(at[0]), float(data["size"][at].max())))
        self.count = len(data)
        self.geometry = self.uploads.write(self.ctx, "labels.geometry", self.geometry, data)
        self._build_vaos(
            [
                (self.shared.quad, "2f", "in_corner"),
                (
                    self.geometry,
                    "2f 4f 4f 1f 1i 1i 1f /i",
                    "in_anchor",
                    "in_box",
                    "in_uv",
                    "in_size",
                    "in_kind",
                    "in_cluster",
                    "in_show",
                ),
            ]
        )

    def render(self, p: Pass) -> None:
        if not p.frame.pick:
            self.draw(p.frame)

    def draw(self, frame: Frame) -> None:
        if not self.count or frame.pick:
            return
        prog, vao = self.active(frame)
        t = frame.theme
        self.font_tex.use(UNIT_MAIN)
        set_uniform(prog, "u_sdf", UNIT_MAIN)
        colors = np.array([t.text_row, t.text, t.text_class, t.text], dtype=np.float32)
        set_uniform(prog, "u_color", colors.tobytes())
        set_uniform(prog, "u_halo", t.text_halo)
        set_uniform(prog, "u_halo_px", 1.6)
        set_uniform(prog, "u_min_px", np.asarray(MIN_PX, np.float32).tobytes())
        set_uniform(prog, "u_hide_px", np.asarray(HIDE_PX, np.float32).tobytes())
        set_uniform(prog, "u_px_per_em_unit", 2.0 * self.font.spread / self.font.em)
        n = self.count
        for kind, first, size in reversed(self.tail):  # labels too small to show: not drawn
            if size * frame.camera.zoom >= 0.85 * HIDE_PX[kind]:
                break
            n = first
        if n:
            vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=n)

    def release(self) -> None:
        super().release()
        for obj in (self.geometry, self.font_tex):
            if obj is not None:
                obj.release()


#: Row labels: the zoom levels at which :func:`shown_from` tries them, each this much below the last.
_LEVEL = 2.0 ** 0.25
_LEVELS = 48  # (down to 1/4096 of the zoom where every row label is its scene size)
_GAP_PX = 2.0  # between two labels on screen


def _ruler(n: int) -> np.ndarray:
    """Rank of each of the positions ``0 .. n-1`` as a ruler's ticks: 0 first, then every
    2^k-th from the longest step down (0, 64, 32, 96, 16, …): any best few are evenly spread."""
    j = np.arange(n)
    tz = np.full(n, 64)
    tz[1:] = np.log2(j[1:] & -j[1:]).astype(np.int64)  # trailing zero bits
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((j, -tz))] = j
    return rank


#: :func:`shown_from` of a label that covers another at every zoom.
NEVER = 1e30


def column_obstacles(scene: Scene) -> np.ndarray:
    """Where the rows wrap into columns: ``(x0, y0, x1, y1, c0, c1)`` around each row's
    clusters, with its column's span ``c0 .. c1`` (its own labels may overlap it).  Empty for
    a scene in one column."""
    rows = np.array([i for i, r in enumerate(scene.rows) if r.width > 0], dtype=np.int64)
    cl = scene.clusters
    mine = np.isin(np.asarray(cl.row, dtype=np.int64), rows)
    if not mine.any():
        return np.zeros((0, 6))
    r = np.asarray(cl.row, dtype=np.int64)[mine]
    x, y, w, h = np.asarray(cl.rect, dtype=np.float64)[mine].T
    used, at = np.unique(r, return_inverse=True)
    box = np.empty((len(used), 6))
    box[:, :2], box[:, 2:4] = np.inf, -np.inf
    np.minimum.at(box[:, 0], at, x)
    np.minimum.at(box[:, 1], at, y)
    np.maximum.at(box[:, 2], at, x + w)
    np.maximum.at(box[:, 3], at, y + h)
    box[:, 4] = [scene.rows[i].x for i in used]
    box[:, 5] = [scene.rows[i].x + scene.rows[i].width for i in used]
    return box


def shown_from(
    labels: list[Label], widths_em: np.ndarray | None = None, columns: np.ndarray | None = None
) -> np.ndarray:
    """The least zoom at which each label is drawn (``0``: at any zoom).

    A row label is never drawn under ``MIN_PX`` pixels, so zoomed out far enough neighbouring
    rows' labels would cover each other, and a column's labels the rows of the column left of
    it (``columns``: :func:`column_obstacles`).  Zooming out, a row label is left out once it
    would cover another column's row or a label of higher rank — larger text first, then a
    ruler order over the labels' sequence, so the labels left are spread evenly — and stays
    out further out.  Other labels shrink with the zoom (and fade, :data:`HIDE_PX`): they are
    always 0.  ``widths_em``: each label's width in em as drawn (default:
    :data:`~cnnvis_gl.layout.scene.CHAR_WIDTH` per character).
    """
    shown = np.zeros(len(labels), dtype=np.float32)
    idx = np.flatnonzero([MIN_PX[KINDS.get(lab.kind, 3)] > 0 for lab in labels])
    if len(idx) < 2:
        return shown
    floor = np.array([MIN_PX[KINDS.get(labels[i].kind, 3)] for i in idx])
    size = np.array([max(labels[i].size, 1e-9) for i in idx])
    x = np.array([labels[i].x for i in idx])
    y = np.array([labels[i].y for i in idx])
    w = np.asarray(widths_em, dtype=np.float64)[idx] if widths_em is not None else np.array(
        [CHAR_WIDTH * len(labels[i].text) for i in idx])  # fmt: skip
    x0 = -w * np.array([{"right": 1.0, "center": 0.5}.get(labels[i].anchor, 0.0) for i in idx])
    rank = np.lexsort((_ruler(len(idx)), -np.round(size, 6)))  # best first
    alive = np.ones(len(idx), dtype=bool)
    obs = np.zeros((0, 6)) if columns is None else np.asarray(columns, dtype=np.float64).reshape(-1, 6)
    other = ~((obs[None, :, 4] <= x[:, None]) & (x[:, None] <= obs[None, :, 5]))  # not its column
    zoom = float((floor / size).max())  # from it up, every row label is its scene size
    for level in range(_LEVELS):
        s = np.maximum(size * zoom, floor)  # pixels per em
        left, top = x * zoom + x0 * s, y * zoom - 0.6 * s
        right, bottom = left + w * s, top + 1.2 * s
        o = obs[:, :4] * zoom
        blocked = (other & (o[None, :, 0] < right[:, None]) & (left[:, None] < o[None, :, 2])
                   & (o[None, :, 1] < bottom[:, None]) & (top[:, None] < o[None, :, 3])).any(axis=1)  # fmt: skip
        a = rank[alive[rank]]  # the labels still drawn, best first
        L, R, T, B = left[a] - _GAP_PX, right[a], top[a] - _GAP_PX, bottom[a]
        hit = (L[:, None] < R[None]) & (L[None] < R[:, None]) & (T[:, None] < B[None]) & (T[None] < B[:, None])
        keep = ~blocked[a]
        for j in range(len(a)):  # greedily: a label stays unless it covers one kept before it
            keep[j] = keep[j] and not (hit[j, :j] & keep[:j]).any()
        alive[a[~keep]] = False  # (they fitted one level up; at the first level: never)
        shown[idx[a[~keep]]] = zoom * _LEVEL if level else NEVER
        if keep.sum() <= 1:
            break
        zoom /= _LEVEL
    return shown


def wrap_words(text: str, width: float, measure: Callable[[str], float] = len) -> list[str]:
    """``text`` broken into lines at most ``width`` wide as ``measure`` measures a line
    (characters by default; pixels with a font's measure), at spaces and at its line breaks;
    a single word wider than ``width`` gets a line of its own."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if line and measure(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def glyphs_for(labels: list[Label]) -> str:
    """The characters the glyph atlas of ``labels`` holds (:func:`build_glyph_atlas`'s
    argument: the base set and any other character the labels use)."""
    needed = set("".join(lab.text for lab in labels))
    return BASE_CHARS + "".join(sorted(needed - set(BASE_CHARS)))


def frame_with_labels(
    labels: list[Label],
    rect: tuple[float, float, float, float],
    viewport: tuple[int, int],
    margin: float = 0.04,
) -> Camera:
    """The camera framing scene rectangle ``rect`` with its row labels inside as *drawn*: a row
    label shown larger than its scene size (never under ``MIN_PX``) reaches further out from
    its anchor, so the rectangle grows by that until the zoom settles."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    rows = [
        lab
        for lab in labels
        if lab.kind == "row" and y0 <= lab.y <= y1 and x0 - 1e-6 <= lab.left <= x1
    ]
    cam = Camera().zoom_to_rect((x0, y0, x1, y1), viewport, margin)
    for _ in range(4):
        left, right = x0, x1
        for lab in rows:
            grow = max(1.0, MIN_PX[KINDS["row"]] / max(lab.size * cam.zoom, 1e-9))
            w = lab.width * grow
            start = lab.x - {"right": w, "center": w / 2}.get(lab.anchor, 0.0)
            left, right = min(left, start), max(right, start + w)
        cam = Camera().zoom_to_rect((left, y0, right, y1), viewport, margin)
    return cam
