"""Row labels zoomed out: never drawn under ``MIN_PX`` pixels, so the renderer leaves out those
that would cover another, or another column's rows (``render.text.shown_from``); the SVG export
draws the same set."""

from __future__ import annotations

import numpy as np

from cnnvis_gl.layout.scene import CHAR_WIDTH, Label
from cnnvis_gl.render.text import MIN_PX, NEVER, column_obstacles, shown_from


def _boxes(labels: list[Label], zoom: float) -> np.ndarray:
    """Screen boxes (x0, y0, x1, y1) of row labels as the text shader draws them at ``zoom``."""
    out = []
    for lab in labels:
        s = max(lab.size * zoom, MIN_PX[0])
        w = CHAR_WIDTH * len(lab.text) * s
        x0 = lab.x * zoom - {"right": w, "center": w / 2}.get(lab.anchor, 0.0)
        out.append((x0, lab.y * zoom - 0.6 * s, x0 + w, lab.y * zoom + 0.6 * s))
    return np.array(out)


def _overlapping(boxes: np.ndarray) -> int:
    x0, y0, x1, y1 = boxes.T
    hit = (x0[:, None] < x1[None]) & (x0[None] < x1[:, None]) & (y0[:, None] < y1[None]) & (y0[None] < y1[:, None])
    np.fill_diagonal(hit, False)
    return int(hit.sum() // 2)


def _column(n: int, pitch: float = 20.0) -> list[Label]:
    """A column of ``n`` rows' labels (right-anchored, as the layout writes them)."""
    return [Label(f"conv{i}  64 neurons", -6.0, i * pitch, 10.0, "right") for i in range(n)]


def test_zoomed_out_the_labels_left_are_apart_and_evenly_spread() -> None:
    labels = _column(65)
    shown = shown_from(labels)
    assert shown[0] == 0.0 and (shown[1:] > 0).all()  # the first row's label: at any zoom
    for zoom in (1.0, 0.5, 0.3, 0.1, 0.03, 0.005):
        drawn = [lab for lab, z in zip(labels, shown, strict=True) if zoom >= z]
        assert _overlapping(_boxes(drawn, zoom)) == 0
        if zoom < 0.5:  # rows 20 units apart, labels >= 11 px high: some are left out,
            assert _overlapping(_boxes(labels, zoom)) > 0 and len(drawn) < len(labels)
            rows = sorted(int(lab.text.split()[0][4:]) for lab in drawn)
            steps = set(np.diff(rows).tolist())  # … every 2nd, 4th, 8th row: a ruler's ticks
            assert rows[0] == 0 and steps <= {2, 4, 8, 16, 32, 64} and len(steps) <= 1
    assert (shown <= 1.0).all()  # at their scene size every label is drawn


def test_larger_text_wins_and_labels_covering_at_every_zoom_never_show() -> None:
    labels = [
        Label("from conv0", -6.0, 34.0, 8.0, "right"),  # first in sequence, but smaller text
        Label("conv1  64 neurons", -6.0, 20.0, 10.0, "right"),
        Label("conv0  64 neurons", -6.0, 0.0, 10.0, "right"),
        Label("conv0 again", -6.0, 0.0, 10.0, "right"),  # on top of conv0's at every zoom
        Label("a cluster", -6.0, 20.0, 10.0, "left", kind="cluster"),  # shrinks with the zoom
    ]
    shown = shown_from(labels)
    assert shown[2] == 0.0 and shown[3] == NEVER
    assert shown[0] > shown[1] > 0.0  # the smaller text leaves first zooming out
    assert shown[4] == 0.0


def test_the_svg_export_leaves_out_the_same_labels() -> None:
    from cnnvis_gl.layout import LayoutOptions, build_scene
    from cnnvis_gl.render.camera import Camera
    from cnnvis_gl.render.theme import get_theme
    from cnnvis_gl.render.vector import _labels
    from cnnvis_gl.run.synthetic import huge_channels, synthetic_snapshot

    scene = build_scene(synthetic_snapshot(huge_channels(40, 4000), 10), LayoutOptions(view_size=(1600, 1000)))
    cam = Camera().zoom_to_rect(scene.bounds, (400, 250), 0.04)  # a quarter of the planned view
    svg = "\n".join(_labels(scene, get_theme("dark"), scene.bounds, cam.zoom))
    rows = [lab for lab in scene.labels if lab.kind == "row"]
    written = [lab for lab in rows if f">{lab.text}<" in svg]
    assert 0 < len(written) < len(rows)
    assert _overlapping(_boxes(rows, cam.zoom)) > 0 and _overlapping(_boxes(written, cam.zoom)) == 0
    columns = column_obstacles(scene)
    shown = shown_from(scene.labels, columns=columns)
    assert {lab.text for lab, z in zip(scene.labels, shown, strict=True)
            if lab.kind == "row" and cam.zoom >= 1.06 * z} == {lab.text for lab in written}  # fmt: skip
    # … and none covers the rows of another column (counted: without them, some would)
    assert len({c[4] for c in columns}) >= 2
    alone = shown_from(scene.labels)
    unruly = [lab for lab, z in zip(scene.labels, alone, strict=True) if lab.kind == "row" and cam.zoom >= 1.06 * z]
    assert _covering(unruly, columns, cam.zoom) > 0 and _covering(written, columns, cam.zoom) == 0


def _covering(labels: list[Label], columns: np.ndarray, zoom: float) -> int:
    """Labels covering the clusters of a row in another column than their own."""
    b, o = _boxes(labels, zoom), columns[:, :4] * zoom
    x = np.array([lab.x for lab in labels])
    other = ~((columns[None, :, 4] <= x[:, None]) & (x[:, None] <= columns[None, :, 5]))
    hit = other & (o[None, :, 0] < b[:, None, 2]) & (b[:, None, 0] < o[None, :, 2])
    hit &= (o[None, :, 1] < b[:, None, 3]) & (b[:, None, 1] < o[None, :, 3])
    return int(hit.any(axis=1).sum())
