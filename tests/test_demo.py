"""``cnnvis demo``: real training with live snapshots, the headless viewer, the offline fallback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.mark.gui
def test_demo_headless_end_to_end(cifar_dir: Path, tmp_path: Path, headless_gl):
    """Trains on real CIFAR-10 while one headless viewer follows the run and screenshots it."""
    from PIL import Image

    from cnnvis_gl.run.snapshot import open_run

    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in _PROXIES and k != "DISPLAY"}
    env.pop("WAYLAND_DISPLAY", None)
    env["CNNVIS_DATA"] = str(cifar_dir.parent)
    args = ["--steps", "12", "--every", "4", "--probe", "100", "--size", "1024x640"]
    r = subprocess.run(
        [sys.executable, "-m", "cnnvis_gl.cli", "demo", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout
    assert "cifar10-train" in text and "falling back" not in text
    assert f"cnnvis view {out}" in text and f"cnnvis info {out}" in text
    run = open_run(out)
    assert run.steps() == [0, 4, 8, 12]
    snap = run.latest()
    assert snap.classes[0] == "airplane"
    assert (out / "scalars.jsonl").stat().st_size > 0
    assert (out / "weights.pt").is_file()
    assert json.loads((out / "demo.json").read_text())["data"] == "cifar10"
    # the run says how to rebuild its model: the viewer can ablate it
    from cnnvis_gl.run.rebuild import rebuild_model, rebuild_probe

    model, why = rebuild_model(out, 10)
    assert model is not None, why
    assert len(rebuild_probe(out, 50)) == 50
    shots = sorted((out / "screenshots").glob("*.png"))
    assert len(shots) >= 2, text
    assert any(p.name.startswith("final-step000012") for p in shots)
    assert all(str(p) in text for p in shots if p.name.startswith("final"))
    for p in shots:
        img = np.asarray(Image.open(p))
        assert img.shape == (640, 1024, 3)
        assert img.std() > 10  # not a blank frame
    # the cheap pictures of the final snapshot
    assert Image.open(out / "features.png").size == (1920, 1200)
    assert Image.open(out / "matrix.png").size == (1920, 1200)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """No CIFAR-10 under CNNVIS_DATA, and the download goes to a closed port on localhost.

    Any connection to a non-loopback address fails the test (recorded in the returned list).
    """
    import cnnvis_gl.data.loaders as loaders
    from cnnvis_gl.data import fetch_cifar10

    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("CNNVIS_DATA", str(empty))
    for k in _PROXIES:
        monkeypatch.delenv(k, raising=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: the connection is refused at once
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    monkeypatch.setattr(loaders, "fetch_cifar10", partial(fetch_cifar10, url=url))
    outside: list[str] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost"):
            outside.append(str(address))
            raise OSError("tests must not touch the internet")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return outside


def test_demo_falls_back_to_bundled_digits_offline(offline: list[str], tmp_path: Path):
    from cnnvis_gl.demo import DemoConfig, run_demo
    from cnnvis_gl.run.snapshot import open_run

    lines: list[str] = []
    cfg = DemoConfig(out=tmp_path / "run", steps=6, every=3, probe=60, view=False, pictures=False)
    result = run_demo(cfg, log=lines.append)
    text = "\n".join(lines)
    assert not offline
    assert result.fallback and result.data == "digits"
    assert "CIFAR-10 is not available" in text and "127.0.0.1" in text
    assert "falling back to scikit-learn's bundled handwritten digits" in text
    assert "digits-train" in text and "digits (fallback)" in text
    run = open_run(tmp_path / "run")
    assert run.steps() == [0, 3, 6]
    snap = run.latest()
    assert snap.classes == [str(c) for c in range(10)]
    assert json.loads((tmp_path / "run" / "demo.json").read_text())["fallback"] is True
    assert result.steps == 6 and not result.screenshots


def test_digits_are_32x32_rgb_in_ten_classes():
    from cnnvis_gl.demo import digits_data

    train, test = digits_data()
    assert len(train) + len(test) == 1797 and len(test) == 500
    x = train.raw(np.arange(8))
    assert tuple(x.shape) == (8, 3, 32, 32) and x.dtype.is_floating_point is False
    assert int(x.max()) > 200 and int(x.min()) == 0
    assert sorted(set(train.labels().tolist())) == list(range(10))


def test_plan_steps_and_run_folder_safety(tmp_path: Path):
    from cnnvis_gl.demo import _clear_run, plan_steps
    from cnnvis_gl.errors import CnnvisError

    assert plan_steps(50000, 600, 128) == (2, 300 * 128)
    assert plan_steps(50000, 12, 128) == (1, 12 * 128)
    assert plan_steps(1297, 600, 128) == (60, 10 * 128)
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    _clear_run(run)  # a previous demo's run: emptied
    assert list(run.iterdir()) == []
    (run / "thesis.tex").write_text("precious")
    with pytest.raises(CnnvisError, match="thesis.tex"):
        _clear_run(run)
    assert (run / "thesis.tex").read_text() == "precious"
