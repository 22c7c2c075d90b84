"""Synthetic snapshots of big networks, for benchmarks and tests: no model, no images to
analyse — class means drawn from a few prototype profiles per layer, weights coupling the
prototypes of consecutive layers, and (``images > 0``) every array a run directory holds, so
that the snapshot can be saved, laid out, rendered and opened in the viewer like a real one."""

from __future__ import annotations

import numpy as np

from ..model.graph import Group, Layer, NeuronGraph, Unit
from .snapshot import Snapshot

__all__ = ["huge_channels", "huge_paths", "synthetic_snapshot"]


def huge_channels(rows: int = 150, neurons: int = 100_000) -> list[int]:
    """ResNet-152's conv widths (its first ``rows``), scaled to ``neurons`` in all: the issue's
    100k-neuron, 150-row network."""
    ch = [64]
    for width, blocks in ((64, 3), (128, 8), (256, 36), (512, 3)):
        for b in range(blocks):
            ch += [width, width, 4 * width] + ([4 * width] if b == 0 else [])
    ch = ch[:rows]
    scale = neurons / sum(ch)
    return [max(4, round(c * scale)) for c in ch]


def huge_paths(rows: int = 150) -> list[str]:
    """Module paths of :func:`huge_channels`' layers as ResNet-152 names them (``conv1``,
    ``layer3.12.conv2``, ``layer1.0.downsample``): with one group per layer, its stages are the
    blocks (``layer3.12``) inside the four ``layer1`` … ``layer4``."""
    paths = ["conv1"]
    for s, blocks in enumerate((3, 8, 36, 3), start=1):
        for b in range(blocks):
            paths += [f"layer{s}.{b}.conv{i}" for i in (1, 2, 3)] + ([f"layer{s}.{b}.downsample"] if b == 0 else [])
    return paths[:rows]


def synthetic_snapshot(
    channels: list[int],
    n_classes: int = 100,
    seed: int = 0,
    prototypes: int = 8,
    images: int = 0,
    paths: list[str] | None = None,
) -> Snapshot:
    """A Snapshot with a chain of conv groups of the given widths and structured random arrays.

    Each group has ``prototypes`` class profiles; a neuron's class means are a noisy, positive
    scaling of its prototype's profile.  The weight from neuron i (prototype a) to neuron j
    (prototype b) of the next group is ``B[a, b]`` plus noise, with ``B`` a signed coupling.
    ``images > 0``: also that many 32×32 images (coloured gratings) and every array a run
    directory holds (top-k images and crops, responses), so that it can be saved and viewed.
    ``paths``: the layers' module paths (default: the group names ``conv1``, ``conv2`` …).
    """
    rng = np.random.default_rng(seed)
    layers = [Layer("input", "input", "input", [], [3, 224, 224])]
    units, groups, arrays = [], [], {}
    prev_proto: np.ndarray | None = None
    prev_name = "input"
    for gi, c in enumerate(channels):
        group = f"conv{gi + 1}"
        name = paths[gi] if paths is not None else group
        layers.append(Layer(name, "conv", "Conv2d", [prev_name], [c, 14, 14], group=gi))
        units.append(Unit(name, [name], name, c, [14, 14], gi))
        groups.append(Group(group, [name], [name], [gi - 1] if gi else []))
        k = min(prototypes, c)
        profiles = rng.gamma(0.6, 1.0, size=(k, n_classes))
        proto = rng.integers(0, k, size=c)
        scale = rng.uniform(0.2, 2.0, size=(c, 1))
        A = scale * profiles[proto] + rng.gamma(0.5, 0.15, size=(c, n_classes))
        arrays[f"units/{name}/A_max"] = A.astype(np.float32)
        arrays[f"units/{name}/A_mean"] = (0.3 * A).astype(np.float32)
        if prev_proto is not None:
            B = rng.normal(0.0, 1.0, size=(prototypes, prototypes))
            W = B[prev_proto][:, proto].T + rng.normal(0.0, 0.8, size=(c, prev_proto.size))
            arrays[f"weights/group/{group}/{groups[gi - 1].name}"] = (0.05 * W).astype(np.float32)
        prev_proto, prev_name = proto, name
        if images:
            arrays.update(_viewable_unit(rng, name, c, images))
    if images:
        arrays.update(_viewable_images(rng, images, n_classes))
    graph = NeuronGraph([3, 224, 224], layers, units, groups)
    classes = [f"class{i}" for i in range(n_classes)]
    return Snapshot(graph, classes, arrays, {"n_images": 0, "model": "synthetic-resnet50"}, step=0)


def _viewable_images(rng: np.random.Generator, m: int, n_classes: int) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    f = rng.uniform(1.0, 6.0, size=(m, 1, 1, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(m, 1, 1, 3))
    angle = rng.uniform(0, np.pi, size=(m, 1, 1, 1))
    t = np.cos(angle) * xx[None, :, :, None] + np.sin(angle) * yy[None, :, :, None]
    img = (127.5 + 127.5 * np.sin(2 * np.pi * f * t + phase)).astype(np.uint8)
    label = rng.integers(0, n_classes, size=m)
    return {
        "images": img,
        "image_index": np.arange(m, dtype=np.int64),
        "image_label": label.astype(np.int64),
        "class_count": np.bincount(label, minlength=n_classes).astype(np.int64),
    }


def _viewable_unit(rng: np.random.Generator, name: str, c: int, m: int, k: int = 3) -> dict[str, np.ndarray]:
    p = f"units/{name}/"
    side = rng.integers(8, 33, size=(c, k))
    y0 = rng.integers(0, 33 - side)
    x0 = rng.integers(0, 33 - side)
    return {
        p + "topk_value": -np.sort(-rng.gamma(2.0, 1.0, size=(c, k)), axis=1).astype(np.float32),
        p + "topk_image": rng.integers(0, m, size=(c, k)).astype(np.int32),
        p + "topk_box": np.stack([y0, x0, y0 + side, x0 + side], axis=-1).astype(np.int16),
        p + "max_response": rng.gamma(2.0, 1.0, size=c).astype(np.float32),
        p + "active_fraction": rng.uniform(0.1, 0.9, size=c).astype(np.float32),
    }


