"""Vector export: ``cnnvis render -o fig.svg / fig.pdf`` read back.  The SVG parses, holds one
element per thing in view (cluster frames, edges as paths, patches as images, labels as text),
draws a class selection as the renderer does (the same neurons dimmed), and rendered back by
CairoSVG it matches the PNG of the same view; the PDF is a one-page PDF of the view's size."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from test_cli import cnnvis

pytestmark = pytest.mark.gl  # (the PNG it is compared with)

SVG = "{http://www.w3.org/2000/svg}"
SIZE = (640, 400)


@pytest.fixture(scope="module")
def run(small_run: Path) -> Path:
    return small_run  # (only read here)


def _render(run: Path, out: Path, *args: str) -> None:
    r = cnnvis("render", run, "-o", out, "--size", f"{SIZE[0]}x{SIZE[1]}", *args)
    assert r.returncode == 0, r.stderr


def _back(svg: Path) -> np.ndarray:
    import cairosvg
    from PIL import Image

    png = svg.with_suffix(".back.png")
    cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=SIZE[0], output_height=SIZE[1])
    return np.asarray(Image.open(png).convert("RGB")).astype(float)


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(float)


def _scene(run: Path, **options):
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import LayoutOptions, build_scene

    snap = open_run(run).latest()
    return snap, build_scene(snap, LayoutOptions(**options))


@pytest.mark.slow
def test_svg_holds_the_view_and_renders_back_like_the_png(run: Path, tmp_path: Path) -> None:
    _, scene = _scene(run)
    views = (
        ("fit", ()),
        ("row", ("--zoom-to", "conv4", "--no-neuron-edges")),
        ("close", ("--zoom-to", "conv3 #2", "--no-neuron-edges")),
    )
    for view, args in views:
        svg, png = tmp_path / f"{view}.svg", tmp_path / f"{view}.png"
        _render(run, svg, *args)
        _render(run, png, *args)
        root = ET.parse(svg).getroot()
        assert root.get("width") == str(SIZE[0]) and root.get("height") == str(SIZE[1])
        frames = root.findall(f".//{SVG}rect[@id]")
        clusters = {f.get("id") for f in frames if f.get("id", "").startswith("cluster-")}
        if view == "fit":  # everything in view: every cluster, edge, neuron patch and row label
            assert clusters == {f"cluster-{i}" for i in scene.clusters.id}
            assert len(root.findall(f".//{SVG}g[@id='edges']/{SVG}path")) == len(scene.edges.weight)
            assert len(root.findall(f".//{SVG}image")) == len(scene.neurons.cluster)
            texts = [t.text for t in root.iter(f"{SVG}text")]
            assert "conv1  16 neurons" in texts and "fc2  10 neurons" in texts
            continue  # (far out the PNG draws mosaics: the SVG keeps every patch)
        # zoomed in: only what is in view is written, and it looks like the PNG
        assert 0 < len(clusters) < len(scene.clusters.id)
        assert 0 < len(root.findall(f".//{SVG}image")) < len(scene.neurons.cluster)
        a, b = _png(png), _back(svg)
        diff = np.abs(a - b).mean(axis=2)
        assert diff.mean() < 3.0, (view, diff.mean())  # anti-aliasing and glyph shapes differ
        assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 3.0


@pytest.mark.slow
def test_a_class_selection_dims_the_same_neurons_and_greys_the_other_columns(run: Path, tmp_path: Path) -> None:
    from cnnvis_gl.layout.selection import highlight

    snap, scene = _scene(run)
    cat = list(snap.classes).index("cat")
    bright = highlight(scene, classes=[cat]).neuron_bright
    svg = tmp_path / "cat.svg"
    _render(run, svg, "--classes", "cat")
    root = ET.parse(svg).getroot()
    images = root.findall(f".//{SVG}image")
    dimmed = sum(1 for im in images if im.get("opacity") is not None)
    assert dimmed == int((bright < 0.5).sum()) > 0
    # the matrix facet, light theme: one rectangle per cell, and the PNG's colours
    _, mscene = _scene(run, facet=1)
    svg, png = tmp_path / "m.svg", tmp_path / "m.png"
    for out in (svg, png):
        _render(run, out, "--facet", "matrix", "--theme", "light", "--classes", "cat")
    cells = root_cells = ET.parse(svg).getroot().findall(f".//{SVG}g[@id='matrices']//{SVG}rect")
    assert len(root_cells) == len(mscene.neurons.cluster) * len(mscene.classes)
    assert len({c.get("fill") for c in cells}) > 20  # a colour scale, not one colour
    a, b = _png(png), _back(svg)
    # the PNG summarises matrices too small to read by their mean colour; the SVG keeps the cells
    assert np.abs(a - b).mean() < 6.0


def test_pdf_is_one_page_of_the_view(run: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "fig.pdf"
    _render(run, pdf, "--theme", "light")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1
    box = re.search(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", data)
    w, h = float(box.group(3)) - float(box.group(1)), float(box.group(4)) - float(box.group(2))
    assert w / h == pytest.approx(SIZE[0] / SIZE[1], rel=1e-3)
    assert not list(tmp_path.glob(".*partial*"))
