"""Deterministic synthetic Scenes and patch pixels, for tests, benchmarks and demos of the renderer.

Nothing here runs analysis: the Scene is made up (clusters packed on shelves, matrices of random
activations, bundled edges through in-between nodes) so the renderer can be exercised without a
model.  Pure NumPy; no OpenGL.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from ..data.cifar10 import CIFAR10_CLASSES
from ..layout.scene import (
    FACET_FEATURES,
    FACET_MATRIX,
    ROW_BETWEEN,
    ROW_LAYER,
    Bundles,
    Clusters,
    ClustersBuilder,
    Edges,
    Label,
    Row,
    Scene,
)


class SyntheticPatches:
    """A stand-in for :class:`~cnnvis_gl.run.snapshot.Snapshot` that only serves ``patches``.

    Each neuron's patch is a deterministic coloured grating with a blob, a function of
    ``(unit, neuron)`` alone, so golden images do not depend on any analysis code.
    """

    def patches(self, name: str, k: int = 1, size: int = 32, neurons=None) -> np.ndarray:
        """uint8 ``[n, k, size, size, 3]`` patches of the given neurons of unit ``name``."""
        if neurons is None:
            raise ValueError("SyntheticPatches.patches needs explicit neurons")
        idx = np.asarray(neurons, dtype=np.int64).reshape(-1)
        base = zlib.crc32(name.encode("utf-8"))
        out = np.empty((len(idx), k, size, size, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
        for i, n in enumerate(idx):
            for j in range(k):
                rng = np.random.default_rng([base, int(n), j])
                out[i, j] = _pattern(rng, xx, yy)
        return out


def _pattern(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(1.5, 6.0)
    phase = rng.uniform(0, 2 * np.pi)
    g = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
    c0, c1 = rng.uniform(0.05, 1.0, size=(2, 3)).astype(np.float32)
    img = c0[None, None, :] * g[..., None] + c1[None, None, :] * (1.0 - g[..., None])
    bx, by, br = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.12, 0.3)
    blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * br * br))[..., None]
    bc = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
    img = img * (1 - 0.7 * blob) + bc * 0.7 * blob
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _hsv_colors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = (np.arange(n) * 0.61803398875 + rng.uniform()) % 1.0
    s, v = 0.55, 0.9
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack(
        [
            np.stack([np.full(n, v), t, np.full(n, p)], 1),
            np.stack([q, np.full(n, v), np.full(n, p)], 1),
            np.stack([np.full(n, p), np.full(n, v), t], 1),
            np.stack([np.full(n, p), q, np.full(n, v)], 1),
            np.stack([t, np.full(n, p), np.full(n, v)], 1),
            np.stack([np.full(n, v), np.full(n, p), q], 1),
        ],
        0,
    )
    return table[i, np.arange(n)].astype(np.float32)


def synthetic_scene(
    n_neurons: int = 60,
    n_edges: int = 40,
    n_rows: int = 3,
    n_classes: int = 10,
    cluster_size: tuple[int, int] = (4, 12),
    patch_side: tuple[float, float] = (14.0, 26.0),
    facets: str = "mixed",
    bundled: float = 0.5,
    labels: bool = True,
    seed: int = 0,
) -> Scene:
    """A deterministic synthetic :class:`~cnnvis_gl.layout.scene.Scene`.

    Parameters
    ----------
    n_neurons, n_edges
        About how many neurons (patches) and Bézier edge pieces to make.
    n_rows
        Layer rows (an in-between row is placed between consecutive layer rows).
    n_classes
        Matrix columns (CIFAR-10 names when 10 or fewer).
    cluster_size
        Range of neurons per cluster.
    patch_side
        Patch side range in scene units (grows with importance).
    facets
        ``"features"``, ``"matrix"`` or ``"mixed"`` (alternating) initial facet per cluster.
    bundled
        Fraction of edge pieces that go through in-between bundle nodes.
    labels
        Row and cluster labels.
    seed
        Everything is a function of the arguments.
    """
    rng = np.random.default_rng(seed)
    n_rows = max(int(n_rows), 1)
    per_row = np.full(n_rows, max(n_neurons // n_rows, 1))
    per_row[: max(n_neurons - int(per_row.sum()), 0)] += 1
    classes = (
        CIFAR10_CLASSES[:n_classes]
        if n_classes <= len(CIFAR10_CLASSES)
        else [f"c{i}" for i in range(n_classes)]
    )
    class_order = rng.permutation(n_classes).astype(np.int32)

    st = _Style(
        patch_side=patch_side,
        cluster_size=cluster_size,
        facets=facets,
        labels=labels,
        classes=[classes[int(k)] for k in class_order],
        head=10.0 if labels else 0.0,  # class labels above each matrix
        max_row_width=max(1400.0, np.sqrt(n_neurons) * (patch_side[1] + _Style.gap) * 2.0),
    )
    rows: list[Row] = []
    units: list[str] = []
    built = ClustersBuilder(n_classes)
    lab: list[Label] = []
    y = 20.0
    layer_rows: list[int] = []
    for r in range(n_rows):
        unit = f"conv{r + 1}" if r < n_rows - 1 else "fc"
        units.append(unit)
        row_index = len(rows)
        row_h = _layer_row(rng, st, r, unit, int(per_row[r]), y, row_index, built, lab)
        rows.append(Row(unit, ROW_LAYER, y, row_h, r, unit))
        layer_rows.append(row_index)
        if labels:
            lab.append(Label(unit, 12.0, y + row_h / 2.0, 16.0, "left", "row"))
        y += row_h
        if r < n_rows - 1:
            rows.append(Row(f"between:{unit}|next", ROW_BETWEEN, y, st.between_h, -1, ""))
            y += st.between_h

    clusters, neurons = built.build()
    C, N = len(clusters.id), len(neurons.unit)
    clusters = replace(clusters, color=_hsv_colors(C, seed))
    neurons = replace(neurons, activation=_activations(rng, N, n_classes))
    edges, bundles = _edges(rng, clusters, rows, layer_rows, n_edges, bundled)
    x1 = float(np.max(clusters.rect[:, 0] + clusters.rect[:, 2])) + 20.0 if C else 200.0
    bounds = (0.0, 0.0, x1, y + 10.0)
    # row bands span the full width: stretch rows to the bounds (Row has no x extent)
    return Scene(
        rows=rows,
        clusters=clusters,
        neurons=neurons,
        edges=edges,
        bundles=bundles,
        labels=lab,
        classes=[classes[int(k)] for k in class_order],  # column order, as layout.build
        class_order=class_order,
        units=units,
        bounds=bounds,
        step=0,
    )


@dataclass(frozen=True)
class _Style:
    """Sizes of a synthetic scene (scene units) and what it shows."""

    patch_side: tuple[float, float]
    cluster_size: tuple[int, int]
    facets: str
    labels: bool
    classes: list[str]  # in matrix column order
    head: float
    max_row_width: float
    pad: float = 6.0
    gap: float = 4.0  # between patches
    cell_w: float = 10.0  # matrix cells
    cell_h: float = 6.0
    x_start: float = 140.0  # room for row labels
    between_h: float = 90.0
    label_h: float = 14.0


def _layer_row(
    rng: np.random.Generator,
    st: _Style,
    r: int,
    unit: str,
    n: int,
    top: float,
    row_index: int,
    built: ClustersBuilder,
    lab: list[Label],
) -> float:
    """The clusters of one layer row, wrapped into lines; returns the row's height."""
    x, line_y, line_h = st.x_start, top + st.label_h, 0.0
    neuron_id = 0
    K = len(st.classes)
    for s in _cluster_sizes(rng, n, st.cluster_size):
        ci = len(built)
        imp, order, local, fw, fh = _shelf_pack(rng, s, st.patch_side, st.gap)
        mw, mh = K * st.cell_w, s * st.cell_h
        cw, ch = max(fw, mw) + 2 * st.pad, max(fh, mh + st.head) + 2 * st.pad
        if x > st.x_start and x + cw > st.x_start + st.max_row_width:
            x = st.x_start
            line_y += line_h + st.label_h + 10.0
            line_h = 0.0
        feat = (x + st.pad, line_y + st.pad, fw, fh)
        mat = (x + st.pad, line_y + st.pad + st.head, mw, mh)
        local[:, 0] += feat[0]
        local[:, 1] += feat[1]
        mixed = FACET_MATRIX if ci % 3 == 2 else FACET_FEATURES
        built.add(
            id=ci,
            row=row_index,
            rect=(x, line_y, cw, ch),
            facet={"features": FACET_FEATURES, "matrix": FACET_MATRIX}.get(st.facets, mixed),
            color=(0.0, 0.0, 0.0),  # set afterwards: hues spread over all clusters
            features_rect=feat,
            matrix_rect=mat,
            unit=r,
            index=np.arange(neuron_id, neuron_id + s),
            neuron_rect=local,
            matrix_row=np.argsort(order).astype(np.int32),
            importance=imp,
            density=0.7,
        )
        neuron_id += s
        if st.labels:
            lab.append(
                Label(f"{unit} · c{ci} ({s})", x + 2, line_y - 7.0, 10.0, "left", "cluster", ci)
            )
            lab += [
                Label(
                    name[:2],
                    mat[0] + (j + 0.5) * st.cell_w,
                    mat[1] - st.head / 2,
                    7.0,
                    "center",
                    "class",
                    ci,
                )
                for j, name in enumerate(st.classes)
            ]
        x += cw + 16.0
        line_h = max(line_h, ch)
    return line_y + line_h - top + 10.0


def _cluster_sizes(rng: np.random.Generator, n: int, size: tuple[int, int]) -> list[int]:
    """Random cluster sizes in ``size`` (the last one smaller) summing to ``n``."""
    sizes = []
    while n > 0:
        s = min(int(rng.integers(size[0], size[1] + 1)), n)
        sizes.append(s)
        n -= s
    return sizes


def _activations(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Class means ``[n, k]`` in [0, 1], with a few strongly selective neurons per class (so
    class selection has something to show)."""
    act = rng.beta(0.7, 2.0, size=(n, k)).astype(np.float32)
    hot = rng.integers(0, k, size=n)
    act[np.arange(n), hot] = np.maximum(act[np.arange(n), hot], rng.uniform(0.6, 1.0, size=n))
    act /= np.maximum(act.max(axis=0, keepdims=True), 1e-6)
    return act


def _shelf_pack(
    rng: np.random.Generator, s: int, patch_side: tuple[float, float], gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``s`` patches with random importances, sides growing with it, shelf-packed into a
    near-square block: (importance, order by importance, rects [s, 4], width, height)."""
    imp = rng.uniform(0, 1, size=s).astype(np.float32)
    order = np.argsort(-imp, kind="stable")
    sides = np.round(patch_side[0] + (patch_side[1] - patch_side[0]) * imp)
    target_w = max(np.sqrt(float(np.sum((sides + gap) ** 2))) * 1.3, sides.max())
    px, py, shelf_h, fw = 0.0, 0.0, 0.0, 0.0
    local = np.zeros((s, 4), dtype=np.float32)
    for j in order:
        sd = sides[j]
        if px > 0 and px + sd > target_w:
            px, py, shelf_h = 0.0, py + shelf_h + gap, 0.0
        local[j] = (px, py, sd, sd)
        px += sd + gap
        shelf_h = max(shelf_h, sd)
        fw = max(fw, px - gap)
    return imp, order, local, fw, py + shelf_h


def _edges(
    rng: np.random.Generator,
    clusters: Clusters,
    rows: list[Row],
    layer_rows: list[int],
    n_edges: int,
    bundled: float,
) -> tuple[Edges, Bundles]:
    ctrl, weight, src, dst, bund = [], [], [], [], []
    b_pos, b_sign, b_in, b_out, b_row = [], [], [], [], []
    pairs = list(zip(layer_rows[:-1], layer_rows[1:], strict=False))
    if not pairs or n_edges <= 0:
        return _empty_edges(), _empty_bundles()
    per_pair = max(n_edges // len(pairs), 1)
    rect = clusters.rect

    def bottom(i: np.ndarray) -> np.ndarray:
        r = rect[i]
        off = rng.uniform(0.3, 0.7, size=len(i))
        return np.stack([r[:, 0] + r[:, 2] * off, r[:, 1] + r[:, 3]], 1)

    def top(i: np.ndarray) -> np.ndarray:
        r = rect[i]
        off = rng.uniform(0.3, 0.7, size=len(i))
        return np.stack([r[:, 0] + r[:, 2] * off, r[:, 1]], 1)

    def curve(p0: np.ndarray, p3: np.ndarray) -> np.ndarray:
        dy = (p3[:, 1] - p0[:, 1])[:, None] * np.array([0.0, 0.5])
        return np.stack([p0, p0 + dy, p3 - dy, p3], 1)

    for a, b in pairs:
        ins = np.flatnonzero(clusters.row == a)
        outs = np.flatnonzero(clusters.row == b)
        brow = a + 1  # the between row follows the upper layer row
        by = rows[brow].y + rows[brow].height / 2.0
        n_b = int(per_pair * bundled)
        made = 0
        while made < n_b:
            ki = int(rng.integers(1, min(4, len(ins)) + 1))
            ko = int(rng.integers(2 if ki == 1 else 1, min(4, len(outs)) + 1))
            ko = min(ko, len(outs))
            I = rng.choice(ins, size=ki, replace=False)
            O = rng.choice(outs, size=ko, replace=False)
            sgn = 1 if rng.uniform() < 0.6 else -1
            ends = np.concatenate([rect[I, 0] + rect[I, 2] / 2, rect[O, 0] + rect[O, 2] / 2])
            node = np.array([float(ends.mean()), by], dtype=np.float32)
            bi = len(b_pos)
            b_pos.append(node)
            b_sign.append(sgn)
            b_in.append(ki)
            b_out.append(ko)
            b_row.append(brow)
            w = sgn * rng.uniform(0.2, 1.0, size=ki + ko)
            p_in = curve(bottom(I), np.repeat(node[None], ki, 0))
            p_out = curve(np.repeat(node[None], ko, 0), top(O))
            ctrl.append(np.concatenate([p_in, p_out]))
            weight.append(w)
            src.append(np.concatenate([I, np.full(ko, -1)]))
            dst.append(np.concatenate([np.full(ki, -1), O]))
            bund.append(np.full(ki + ko, bi))
            made += ki + ko
        n_d = max(per_pair - made, 0)
        if n_d:
            I = rng.choice(ins, size=n_d)
            O = rng.choice(outs, size=n_d)
            w = rng.normal(0, 0.5, size=n_d)
            ctrl.append(curve(bottom(I), top(O)))
            weight.append(w)
            src.append(I)
            dst.append(O)
            bund.append(np.full(n_d, -1))
    w = np.concatenate(weight).astype(np.float32)
    edges = Edges(
        ctrl=np.concatenate(ctrl).astype(np.float32),
        weight=w,
        sign=np.where(w >= 0, 1, -1).astype(np.int8),
        src=np.concatenate(src).astype(np.int32),
        dst=np.concatenate(dst).astype(np.int32),
        bundle=np.concatenate(bund).astype(np.int32),
    )
    B = len(b_pos)
    bundles = Bundles(
        pos=np.asarray(b_pos, dtype=np.float32).reshape(B, 2),
        sign=np.asarray(b_sign, dtype=np.int8),
        n_in=np.asarray(b_in, dtype=np.int32),
        n_out=np.asarray(b_out, dtype=np.int32),
        row=np.asarray(b_row, dtype=np.int32),
    )
    return edges, bundles


def _empty_edges() -> Edges:
    z = np.zeros(0, dtype=np.int32)
    return Edges(
        np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32), z.astype(np.int8), z, z, z
    )


def _empty_bundles() -> Bundles:
    z = np.zeros(0, dtype=np.int32)
    return Bundles(np.zeros((0, 2), np.float32), z.astype(np.int8), z, z, z)
