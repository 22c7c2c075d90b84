"""Fuzz the reading of run directories: damage a real run in many ways, read it as cnnvis does.

    python tools/fuzz_runs.py --minutes 10            # the soak (a new real run is made first)
    python tools/fuzz_runs.py --run RUN --mutants 500 --seed 3

Every mutant must either read back exactly as the undamaged run (same graph, classes, meta,
arrays, patches, debugging flags) or fail with the project's error (``CnnvisError``) whose
message names a file of the run.  Any other exception is a crash; a changed value after raw
damage (bytes, truncation, deletion, a hand-edited field) is a silent change.  Damage that
another program could write on purpose (a re-sealed JSON field, arrays rewritten with valid
checksums) may also read back with other values, but must not crash.

Prints a table per kind of damage and the first failures with their seeds, then exits 1 if any.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

#: Kinds of damage.  "raw" kinds must read back identically or fail cleanly.
RAW = ("flip_bits", "truncate", "delete", "edit_json", "npy_header")
WRITER = ("edit_json_sealed", "rewrite_array")
KINDS = RAW + WRITER
VALUES = [None, -1, 0, 1, 1.5, 10**25, -(10**25), "x", "", [], {}, True, math.nan, [1, 2], {"a": 1}]


def make_run(root: Path, data: str) -> Path:
    """A small real run: BaseCNN×¼ (random init) on 120 CIFAR-10 test images."""
    import torch

    import cnnvis_gl as cv
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    snap = cv.analyze(build_model("basecnn-x0.25"), data, limit=120, progress=False)
    run = root / "template"
    snap.save(run, 0)
    return run


def read(run: Path) -> dict[str, Any]:
    """Everything ``cnnvis info`` / ``render`` / the viewer's inspectors read from a run."""
    from cnnvis_gl import open_run
    from cnnvis_gl.analysis.diagnose import diagnose

    r = open_run(run)
    snap = r.latest()
    out: dict[str, Any] = {
        "graph": r.graph.to_dict(),
        "classes": list(r.classes),
        "meta": json.dumps(snap.meta, sort_keys=True),
        "repr": repr(snap),
    }
    for key in snap.keys():
        out[f"array {key}"] = np.array(snap[key])
    for u in r.graph.units:
        out[f"activations {u.name}"] = np.array(snap.activations(u.name))
        out[f"patches {u.name}"] = snap.patches(u.name, k=2, size=8, neurons=np.arange(3))
    out["flags"] = [repr(f) for f in diagnose(snap)]
    return out


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray):
            if not isinstance(y, np.ndarray) or x.dtype != y.dtype or x.shape != y.shape:
                return False
            if not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
                return False
        elif x != y:
            return False
    return True


def _files(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob("*") if p.is_file())


def _leaves(obj: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(obj: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        obj = obj[k]
    if path:
        obj[path[-1]] = value


def mutate(run: Path, kind: str, rng: random.Random) -> str:
    """Damage ``run`` in place; returns what was done."""
    from cnnvis_gl.run import store

    files = _files(run)
    jsons = [p for p in files if p.suffix == ".json"]
    npys = [p for p in files if p.suffix == ".npy"]
    if kind == "flip_bits":
        path = rng.choice(files)
        raw = bytearray(path.read_bytes())
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(raw))
            raw[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw))
        return f"flip bits in {path.name}"
    if kind == "truncate":
        path = rng.choice(files)
        raw = path.read_bytes()
        path.write_bytes(raw[: rng.randrange(len(raw))])
        return f"truncate {path.name}"
    if kind == "delete":
        path = rng.choice(files)
        path.unlink()
        return f"delete {path.name}"
    if kind in ("edit_json", "edit_json_sealed"):
        path = rng.choice(jsons)
        doc = json.loads(path.read_text())
        leaf = rng.choice(_leaves(doc))
        value = rng.choice(VALUES)
        if not leaf:
            doc = value
        else:
            _set(doc, leaf, value)
        if kind == "edit_json_sealed" and isinstance(doc, dict):
            doc = store._sealed(doc)
        path.write_text(json.dumps(doc))
        return f"{path.name}: {'/'.join(map(str, leaf))} = {value!r}"
    if kind == "npy_header":
        path = rng.choice(npys)
        raw = path.read_bytes()
        head, body = raw[:128], raw[128:]
        swaps = [
            (b"'<f4'", b"'>f4'"),
            (b"'<i8'", b"'>i8'"),
            (b"'<f4'", b"'<f8'"),
            (b"'<i8'", b"'<i4'"),
            (b"False", b"True "),
            (b"'shape': (", b"'shape': (1, "),
            (b"{'descr'", b"{('descr'"),
        ]
        old, new = rng.choice([s for s in swaps if s[0] in head] or swaps)
        path.write_bytes(head.replace(old, new, 1) + body)
        return f"{path.name}: header {old!r} -> {new!r}"
    if kind == "rewrite_array":
        old = store.open_snapshot(run, 0)
        arrays = {k: np.array(old[k]) for k in old.keys()}
        key = rng.choice(sorted(arrays))
        a = arrays[key]
        how = rng.choice(["dtype", "shape", "values", "drop"])
        if how == "dtype":
            arrays[key] = a.astype(rng.choice([np.float32, np.int64, np.uint8, np.float64]))
        elif how == "shape":
            arrays[key] = a.reshape(-1) if a.ndim > 1 else a[: max(len(a) // 2, 0)]
        elif how == "values" and a.size:
            hi = int(np.abs(a).max()) * 2 + 10 if np.isfinite(a).all() else 10
            flat = a.reshape(-1).copy()
            i = rng.randrange(flat.size)
            lo = -5
            if a.dtype.kind in "iub":
                info = np.iinfo(a.dtype) if a.dtype.kind != "b" else np.iinfo(np.uint8)
                lo, hi = max(lo, int(info.min)), min(hi, int(info.max))
            flat[i] = rng.randint(lo, max(lo, hi))
            arrays[key] = flat.reshape(a.shape)
        else:
            del arrays[key]
        store.write_snapshot(run, 0, arrays, old.meta)
        return f"rewrite {key}: {how}"
    raise ValueError(kind)


def one(template: Path, expected: dict, kind: str, seed: int, work: Path) -> tuple[str, str]:
    """Outcome (``same``, ``error``, ``changed``, ``silent``, ``crash``) and a description."""
    from cnnvis_gl.errors import CnnvisError

    rng = random.Random(seed)
    run = work / f"m{seed}"
    shutil.copytree(template, run)
    try:
        what = mutate(run, kind, rng)
        try:
            got = read(run)
        except CnnvisError as e:
            msg = str(e)
            if str(run) not in msg or "\n" in msg:
                return "crash", f"{what}: error without a file of the run: {msg[:200]}"
            return "error", what
        except Exception as e:  # noqa: BLE001 - the finding
            tb = traceback.format_exc().strip().splitlines()[-3:]
            return "crash", f"{what}: {type(e).__name__}: {e} | {' / '.join(tb)}"[:600]
        if same(got, expected):
            return "same", what
        return ("changed" if kind in WRITER else "silent"), what
    finally:
        shutil.rmtree(run, ignore_errors=True)


def fuzz(
    template: Path, mutants: int | None, minutes: float | None, seed: int = 0
) -> dict[str, Counter]:
    """Run the mutants (``mutants`` of them, or for ``minutes``); counts per kind."""
    expected = read(template)
    counts: dict[str, Counter] = {k: Counter() for k in KINDS}
    failures: list[str] = []
    end = time.monotonic() + 60 * minutes if minutes else math.inf
    with tempfile.TemporaryDirectory(prefix="cnnvis-fuzz-") as tmp:
        i = 0
        while (mutants is None or i < mutants) and time.monotonic() < end:
            kind = KINDS[i % len(KINDS)]
            s = seed * 1_000_003 + i
            outcome, what = one(template, expected, kind, s, Path(tmp))
            counts[kind][outcome] += 1
            if outcome in ("crash", "silent"):
                failures.append(f"seed {s} [{kind}] {outcome}: {what}")
            i += 1
    counts["_failures"] = Counter({f: 1 for f in failures})
    return counts


def table(counts: dict[str, Counter]) -> str:
    cols = ("same", "error", "changed", "silent", "crash")
    rows = [f"{'damage':<18}" + "".join(f"{c:>9}" for c in cols)]
    for kind in KINDS:
        rows.append(f"{kind:<18}" + "".join(f"{counts[kind][c]:>9}" for c in cols))
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--run", type=Path, help="a run directory to damage copies of (default: make one)"
    )
    ap.add_argument(
        "--data", default=None, help="dataset spec for the run made (default: CIFAR-10)"
    )
    ap.add_argument("--mutants", type=int, help="how many (default: until --minutes)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnvis-fuzz-run-") as tmp:
        template = a.run
        if template is None:
            import os

            base = os.environ.get("CNNVIS_DATA") or str(
                Path(__file__).resolve().parents[2] / "shared" / "data"
            )
            template = make_run(Path(tmp), a.data or f"cifar10:{Path(base) / 'cifar10'}")
        t0 = time.perf_counter()
        counts = fuzz(template, a.mutants, None if a.mutants else a.minutes, a.seed)
        n = sum(sum(counts[k].values()) for k in KINDS)
        print(f"{n} mutants in {time.perf_counter() - t0:.0f} s (seed {a.seed})")
        print(table(counts))
        failures = list(counts["_failures"])
        for f in failures[:20]:
            print(f)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
