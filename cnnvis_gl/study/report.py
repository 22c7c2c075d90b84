"""A study's report: ``results.md`` / ``results.json`` (tables and the findings stated from the
numbers) and its figures, drawn by ``cnnvis render`` and set side by side with a caption each."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CnnvisError

FIGURES = "figures"
PANEL = (760, 980)  # one variant's network (depth), pixels
MATRIX_PANEL = (760, 640)  # one cluster's activation matrix
CAPTION, PAD = 44, 12


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _err(v: float) -> str:
    return f"{v:.1%}"


def findings(study: str, rows: list[dict[str, Any]]) -> list[str]:
    """What the measured numbers show, as sentences (the paper's claim next to ours)."""
    lab = [r["label"] for r in rows]
    test = [r["test_error"] for r in rows]
    train = [r["train_error"] for r in rows]
    best = int(np.argmin(test))
    out = [
        "Test error: " + ", ".join(f"{n} {_err(e)}" for n, e in zip(lab, test, strict=True))
        + f"; lowest: {lab[best]}."
    ]  # fmt: skip
    if len(rows) < 2:
        return out  # nothing to compare
    if study == "depth":
        top = [r["top_positive"] for r in rows]
        bottom = [r["bottom_positive"] for r in rows]
        out.append(
            "Positive share of the strongest edges between the top three conv layer pairs: "
            + ", ".join(f"{n} {_pct(t)} (bottom three: {_pct(b)})"
                        for n, t, b in zip(lab, top, bottom, strict=True)) + "."
        )  # fmt: skip
        deep = int(np.argmax([r["conv_layers"] for r in rows]))
        red = [_group(r, _last_conv(r))["redundancy"] for r in rows]
        most = red[deep] > max(v for i, v in enumerate(red) if i != deep)
        out.append(
            "Neurons of the top conv group with a near-duplicate class profile: "
            + ", ".join(f"{n} {_pct(v)}" for n, v in zip(lab, red, strict=True))
            + (": the deepest model is the most redundant, the paper's reading of its edges."
               if most else ".")
        )  # fmt: skip
        others = [t for i, t in enumerate(top) if i != deep]
        if top[deep] >= max(others):
            out.append(
                f"As in the paper, the deepest model's top layers have the most positive edges "
                f"({lab[deep]}: {_pct(top[deep])}, others at most {_pct(max(others))})"
                + (", nearly no inhibition." if top[deep] >= 0.95 else
                   "; but not the paper's 'only positive' (≥ 95 %).")
            )  # fmt: skip
        else:
            out.append(
                f"Unlike the paper, the deepest model's top layers are not the most positive "
                f"({lab[deep]}: {_pct(top[deep])} vs {_pct(max(others))})."
            )
        return out
    # width
    gaps = [te - tr for te, tr in zip(test, train, strict=True)]
    out.append(
        "Train error: " + ", ".join(f"{n} {_err(e)}" for n, e in zip(lab, train, strict=True))
        + "; test − train gap: " + ", ".join(f"{n} {g * 100:.1f} pt" for n, g in zip(lab, gaps, strict=True))
        + "."
    )  # fmt: skip
    wide = len(rows) - 1
    if train[wide] <= min(train) and test[wide] > min(test):
        out.append(
            f"As in the paper, the widest model over-fits: the lowest train error ({_err(train[wide])}) "
            f"but a higher test error than {lab[best]} ({_err(test[wide])} vs {_err(test[best])})."
        )
    else:
        out.append(
            f"Unlike the paper's BaseCNN×4, the widest model here ({lab[wide]}) does not do worse "
            f"on the test images than a narrower one (test error {_err(test[wide])}, lowest "
            f"{_err(min(test))}); its gap is {'the largest' if gaps[wide] >= max(gaps) else 'not the largest'}"
            f" ({gaps[wide] * 100:.1f} pt)."
        )  # fmt: skip
    last = _last_conv(rows[0])
    red = [_group(r, last)["redundancy"] for r in rows]
    out.append(
        f"Neurons of {last} with a near-duplicate class profile: "
        + ", ".join(f"{n} {_pct(v)}" for n, v in zip(lab, red, strict=True))
        + (" — more with width, as in the paper." if red[-1] > red[0] else
           " — not more with width, unlike the paper.")
    )  # fmt: skip
    return out


def _last_conv(row: dict[str, Any]) -> str:
    conv = [g["name"] for g in row["groups"] if g["name"].startswith("conv")]
    return conv[-1] if conv else row["groups"][-1]["name"]


def _group(row: dict[str, Any], name: str) -> dict[str, Any]:
    return next((g for g in row["groups"] if g["name"] == name), {})


def _tables(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | conv layers | parameters | train error | test error | clusters "
        "| positive edges, bottom 3 conv pairs | top 3 conv pairs | train time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['conv_layers']} | {r['params'] / 1e6:.2f} M | {_err(r['train_error'])} "
            f"| {_err(r['test_error'])} | {sum(g['clusters'] for g in r['groups'])} "
            f"| {_pct(r['bottom_positive'])} | {_pct(r['top_positive'])} | {r['train_seconds'] / 60:.1f} min |"
        )  # fmt: skip
    names = [g["name"] for g in max(rows, key=lambda r: len(r["groups"]))["groups"]]
    for r in rows:
        names += [g["name"] for g in r["groups"] if g["name"] not in names]
    head = "| group | " + " | ".join(r["label"] for r in rows) + " |"
    rule = "| --- |" + " ---: |" * len(rows)
    lines += ["", "Neurons with a near-duplicate class profile (redundancy) · clusters, per group:",
              "", head, rule]  # fmt: skip
    for n in names:
        cells = []
        for r in rows:
            g = _group(r, n)
            cells.append(f"{_pct(g['redundancy'])} · {g['clusters']}" if g else "—")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "Positive share of the strongest quarter of edges, per layer pair:", ""]
    for r in rows:
        pairs = ", ".join(f"{p['from']}→{p['to']} {_pct(p['positive'])}" for p in r["pairs"])
        lines.append(f"- {r['label']}: {pairs}")
    return lines


def write_report(
    study: str, profile: str, recipe: Any, data_spec: str, out: Path,
    rows: list[dict[str, Any]], figures: list[Path],
) -> Path:  # fmt: skip
    """Write ``out/results.md`` and ``out/results.json``; returns the Markdown file."""
    found = findings(study, rows)
    doc = {
        "study": study, "profile": profile, "recipe": asdict(recipe), "data": data_spec,
        "variants": rows, "findings": found,
        "figures": [str(f.relative_to(out)) for f in figures],
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    n_train = recipe.limit or "all"
    n_test = recipe.test_limit or "all"
    lines = [
        f"# {study.capitalize()} study ({profile} profile)",
        "",
        f"Data `{data_spec}`: {n_train} training images, {n_test} test images. Recipe (every "
        f"variant): SGD, Nesterov momentum 0.9, lr {recipe.lr} cosine, weight decay 5e-4, batch "
        f"{recipe.batch_size}, {recipe.epochs} epochs, "
        f"{'random crop + flip' if recipe.augment else 'no augmentation'}, seed {recipe.seed}. "
        f"Train error: eval mode on the training images; snapshots on {recipe.probe} test images.",
        "",
        *_tables(rows),
        "",
        "## Findings",
        "",
        *[f"- {f}" for f in found],
    ]
    for f in figures:
        lines += ["", f"![{f.stem}]({f.relative_to(out).as_posix()})"]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _render(run_dir: Path, png: Path, args: list[str]) -> None:
    """The figure is what ``cnnvis render`` draws (run as the command a reader would type)."""
    import subprocess
    import sys

    cmd = ["render", str(run_dir), "-o", str(png), "--fresh", "--theme", "light", *args]
    r = subprocess.run([sys.executable, "-m", "cnnvis_gl.cli", *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no message"])[-1]
        raise CnnvisError(f"cnnvis {' '.join(cmd)} failed: {why}")


def write_figures(
    study: str, out: Path, rows: list[dict[str, Any]], log: Callable[[str], Any] = print
) -> list[Path]:
    """Draw the study's figures into ``out/figures``; returns their paths.  Depth: each
    network with its top conv group one row per layer (the layer pairs of the positive-edge
    finding), then the top conv group's matrices; width: the last conv group's matrices of
    the narrowest, a middle and the widest model."""
    figs = out / FIGURES
    figs.mkdir(exist_ok=True)
    paths = []
    if study == "depth":
        panels = []
        for r in rows:
            png = figs / f"{r['model']}.png"
            _render(out / r["model"], png, ["--size", "{}x{}".format(*PANEL), "--expand", _last_conv(r)])
            panels.append((png, f"{r['label']}: top conv pairs {_pct(r['top_positive'])} positive"))
        paths.append(figs / "depth_edges.png")
        sheet(panels, paths[-1])
        picks = list(range(len(rows)))
    else:
        picks = sorted({0, (len(rows) - 1) // 2, len(rows) - 1})
    panels = []
    for i in picks:  # the top conv group's largest cluster as a matrix, big enough to read
        r = rows[i]
        last = _last_conv(r)
        n, size = _largest_cluster(out / r["model"], last)
        png = figs / f"{r['model']}_{last}_matrix.png"
        _render(out / r["model"], png, ["--size", "{}x{}".format(*MATRIX_PANEL), "--facet",
                                        "matrix", "--zoom-to", f"{last} #{n}", "--no-neuron-edges"])  # fmt: skip
        red = _group(r, last)["redundancy"]
        panels.append((png, f"{r['label']} {last} #{n} ({size} of {_group(r, last)['neurons']});"
                            f" {last}: {_pct(red)} near-duplicates"))  # fmt: skip
    paths.append(figs / f"{study}_matrices.png")
    sheet(panels, paths[-1])
    for path in paths:
        log(f"wrote {path}")
    return paths


def _largest_cluster(run_dir: Path, group: str) -> tuple[int, int]:
    """``(N, neurons)`` of the group's largest cluster in the matrix view ``cnnvis render
    --fresh --facet matrix`` lays out, ``N`` as the viewer names it (1-based, left to right)."""
    from ..layout import LayoutOptions, build_scene
    from ..layout.scene import FACET_MATRIX
    from ..layout.search import row_clusters
    from ..run.snapshot import open_run

    options = LayoutOptions(facet=FACET_MATRIX, edge_fraction=0.25, view_size=MATRIX_PANEL)
    scene = build_scene(open_run(run_dir).latest(), options)
    row = next(k for k, r in enumerate(scene.rows) if r.name == group)
    sizes = [int(scene.clusters.size[c]) for c in row_clusters(scene, row)]
    k = int(np.argmax(sizes))
    return k + 1, sizes[k]


def sheet(panels: list[tuple[Path, str]], path: Path) -> None:
    """Pictures side by side, each under its caption, on white."""
    from PIL import Image, ImageDraw, ImageFont

    from ..resources import asset_dir

    font = ImageFont.truetype(str(asset_dir() / "DejaVuSans.ttf"), 22)
    ims = [Image.open(p).convert("RGB") for p, _ in panels]
    width = sum(im.width for im in ims) + PAD * (len(ims) + 1)
    out = Image.new("RGB", (width, max(im.height for im in ims) + CAPTION + PAD), "white")
    draw = ImageDraw.Draw(out)
    x = PAD
    for im, (_, text) in zip(ims, panels, strict=True):
        draw.text((x + 4, 10), text, fill=(20, 20, 20), font=font)
        out.paste(im, (x, CAPTION))
        x += im.width + PAD
    out.save(path)
