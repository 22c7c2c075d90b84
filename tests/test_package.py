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


#: The floors of the package, lowest first: a module imports only from its own floor or lower
#: ones (docs/ARCHITECTURE.md).  Data flows model → stats → run → analysis → layout → render →
#: ui; the entry points sit on top.
FLOORS = (
    {"errors", "xp", "resources", "remember"},
    {"data", "model", "models", "train"},
    {"stats"},
    {"run", "api", "integrations"},  # api builds snapshots; the Recorder (run/) calls it
    {"analysis"},
    {"layout", "compare"},  # compare: two runs group by group (the viewer shows it too)
    {"render"},
    {"ui"},
    {"demo", "video", "study", "cli", "__init__"},
)


def _import_targets(repo_root):
    """(module, imported name, line) of every import of a package module, lazy ones too."""
    import ast

    root = repo_root / "cnnvis_gl"
    for path in root.rglob("*.py"):
        parts = path.relative_to(repo_root).with_suffix("").parts
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        package = name if is_pkg else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                yield name, target, [a.name for a in node.names], node.lineno


def test_every_relative_import_resolves(repo_root):
    """A relative import names a module of the package (moving a module must not leave a lazy
    ``from ..x import y`` pointing nowhere: that fails only when the code runs)."""
    import importlib

    modules = set(_package_imports(repo_root))
    broken = []
    for name, target, names, line in _import_targets(repo_root):
        if target not in modules:
            broken.append(f"{name}:{line} imports from {target} (no such module)")
            continue
        mod = importlib.import_module(target)
        for n in names:
            if f"{target}.{n}" not in modules and not hasattr(mod, n):
                broken.append(f"{name}:{line} imports {n} from {target}, which lacks it")
    assert broken == []


def _package_imports(repo_root) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in it, lazily too; not the imports
    under ``if TYPE_CHECKING:``, which never run)."""
    import ast

    root = repo_root / "cnnvis_gl"
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(repo_root).with_suffix("").parts
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        package = name if is_pkg else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        out = graph.setdefault(name, set())
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                if node.level:
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            out.update(t for t in targets if t.startswith("cnnvis_gl"))
    return {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}


def test_every_module_imports_only_its_floor_or_lower_ones(repo_root):
    graph = _package_imports(repo_root)

    def floor(module: str) -> int:
        top = module.split(".")[1] if "." in module else "__init__"
        return next(i for i, f in enumerate(FLOORS) if top in f)

    upward = sorted(
        f"{a} imports {b}"
        for a, bs in graph.items()
        for b in bs
        if floor(b) > floor(a)
        and not b.endswith("__init__")
        and not (a.count(".") == 1 and b == "cnnvis_gl")
    )
    assert upward == []


def test_no_import_cycles(repo_root):
    graph = _package_imports(repo_root)
    # a package's __init__ re-exporting its modules is not a cycle with them
    edges = {
        a: {b for b in bs if not a.startswith(b + ".") and b != "cnnvis_gl"}
        for a, bs in graph.items()
    }
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(path[path.index(n) :] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_panels_are_functions_of_state_and_actions():
    """Every registered panel, the status bar and the menus take ``(state, actions)`` and
    nothing else: they read the AppState and command through Actions."""
    import inspect

    from cnnvis_gl.ui.panels import PANELS, menus, status_bar

    for draw in [p.draw for p in PANELS] + [menus, status_bar]:
        params = list(inspect.signature(draw).parameters)
        assert params == ["st", "act"], (draw.__qualname__, params)


def test_each_visual_says_where_it_is_drawn_and_what_it_picks(headless_gl):
    """The renderer's visuals are one list; each names its layer and its pick kind, and the
    ID pass compiles only for the pickable ones."""
    import moderngl

    from cnnvis_gl.render import SceneRenderer
    from cnnvis_gl.render.pick import PickKind

    ctx = moderngl.create_standalone_context(backend="egl")
    try:
        r = SceneRenderer(ctx)
        kinds = {type(v).__name__: v.pick_kind for v in r.visuals if not getattr(v, "detail", 0)}
        assert kinds == {
            "EdgesVisual": PickKind.EDGE,
            "NodesVisual": PickKind.BUNDLE,
            "FramesVisual": PickKind.CLUSTER,
            "PatchesVisual": PickKind.NEURON,
            "MosaicVisual": None,  # far out a pick finds the cluster's frame
            "MatrixVisual": PickKind.NEURON,
            "TextVisual": None,
        }
        for v in r.visuals:
            assert v.layer in ("edges", "scene")
            assert (v.pick_prog is None) == (v.pick_kind is None)
        r.release()
    finally:
        ctx.release()
