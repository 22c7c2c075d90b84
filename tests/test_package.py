"""Packaging: the wheel carries shaders/ and assets/; the core runs without GL or imgui."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile

import pytest

from cnnvis_gl import resources


def test_resources_in_source_tree():
    assert "#version 330 core" in resources.read_shader("patch.vert")
    assert (resources.asset_dir() / "colormaps.json").is_file()
    with pytest.raises(FileNotFoundError, match="nosuch.frag"):
        resources.read_shader("nosuch.frag")


@pytest.mark.slow
def test_wheel_contains_and_finds_shaders(repo_root, tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, repo_root],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel = next(dist.glob("cnnvis_gl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "cnnvis_gl/shaders/patch.vert" in names and "cnnvis_gl/assets/colormaps.json" in names
    # a fresh venv with nothing but the wheel: shaders load through the installed package
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    r = subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    code = "from cnnvis_gl import resources as r; print(r.shader_dir()); print(r.read_shader('patch.frag')[:20])"
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(env_dir) in r.stdout.splitlines()[0]
    assert "#version 330 core" in r.stdout


def test_core_runs_without_gl_or_imgui(cifar_dir, tmp_path):
    code = f"""
import sys
for name in ("moderngl", "OpenGL", "imgui_bundle", "glfw"):
    sys.modules[name] = None  # any import of them fails
import cnnvis_gl as cv
from cnnvis_gl.models import build_model
from cnnvis_gl import analysis, cli, layout, model, run, stats, data, xp
snap = cv.analyze(build_model("basecnn-x0.25"), "cifar10:{cifar_dir}", limit=16, progress=False)
snap.save(r"{tmp_path}", 0)
print(cv.open_run(r"{tmp_path}").latest())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "16 images" in r.stdout


def test_shaders_compile_in_a_real_gl_context(headless_gl):
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl")
    try:
        prog = ctx.program(
            vertex_shader=resources.read_shader("patch.vert"),
            fragment_shader=resources.read_shader("patch.frag"),
        )
        assert "u_view" in prog and "u_atlas" in prog
        assert ctx.error == "GL_NO_ERROR"
    finally:
        ctx.release()


def test_only_render_touches_gl_and_only_ui_imports_imgui(repo_root):
    import ast

    allowed = {
        "moderngl": "render",
        "OpenGL": "render",
        "glcontext": "render",
        "imgui_bundle": "ui",
    }
    offenders = []
    for path in (repo_root / "cnnvis_gl").rglob("*.py"):
        package = path.relative_to(repo_root / "cnnvis_gl").parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root in allowed and package != allowed[root]:
                    offenders.append(f"{path.relative_to(repo_root)} imports {name}")
    assert offenders == []
