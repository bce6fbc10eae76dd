"""The layout rules of docs/architecture.md, checked: imports point down, modules stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UPPER = ("streamseg_app", "streamseg_engines", "streamseg_plugins")
#: Library modules stay under this many lines (issue 12: "no module over 500 lines").
MAX_LINES = 500


def _imports(path: Path, *, top_level: bool = False) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` in ``path`` names, at any depth (lazy
    ones too, and ``import_optional("name", ...)``), or with ``top_level`` only in its top-level
    statements (not inside functions)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_optional" and node.args
              and isinstance(node.args[0], ast.Constant)):  # streamseg.optional.import_optional("ray", ...)
            names.add(node.args[0].value)
    return names


def test_the_library_never_imports_the_window_the_engines_or_the_plugins() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(n for n in _imports(path) if n.split(".")[0] in UPPER)
        for path in (REPO / "streamseg").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("argv", [[], ["run", "--help"]])
def test_the_cli_loads_none_of_them(argv: list[str]) -> None:
    """``import streamseg.cli`` (and building the ``run`` parser) loads no module of the packages above it."""
    code = (
        "import sys, contextlib, io\n"
        "import streamseg.cli as cli\n"
        f"argv = {argv!r}\n"
        "if argv:\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        cli.main(argv)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {UPPER!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_registered_subcommands_and_backends_come_through_entry_points() -> None:
    """``gui`` and ``build-engine`` are in ``streamseg --help``; ``tensorrt`` is a backend name; only by entry point."""
    from streamseg.backends import BACKENDS, backend_names

    out = subprocess.run([sys.executable, "-m", "streamseg.cli", "--help"], cwd=REPO, capture_output=True, text=True)
    assert "gui" in out.stdout and "build-engine" in out.stdout, out.stdout + out.stderr
    assert "tensorrt" in backend_names() and "tensorrt" not in BACKENDS


def test_no_library_module_is_over_500_lines() -> None:
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text().splitlines())
        for top in ("streamseg", "app", "engines", "plugins")
        for p in (REPO / top).rglob("*.py")
    }
    assert {k: n for k, n in sizes.items() if n > MAX_LINES} == {}


def test_only_the_ray_monitor_imports_ray_and_only_monitor_ray_imports_it() -> None:
    """Issue 17: without ``--ray`` nothing imports Ray (an optional extra)."""
    ray_modules = {"streamseg/monitor/cluster.py", "streamseg/monitor/replicas.py"}
    importers = {
        str(p.relative_to(REPO)) for p in (REPO / "streamseg").rglob("*.py") if any(
            n.split(".")[0] == "ray" for n in _imports(p))
    }  # fmt: skip
    assert importers == {"streamseg/monitor/replicas.py"}  # import_ray(), which cluster.py calls too
    eager = {
        str(p.relative_to(REPO)) for p in (REPO / "streamseg").rglob("*.py")
        if str(p.relative_to(REPO)) not in ray_modules
        and _imports(p, top_level=True) & {"streamseg.monitor.cluster", "streamseg.monitor.replicas"}
    }  # fmt: skip
    assert eager == set()
    code = (
        "import sys, contextlib, io\nimport streamseg.cli as cli\nimport streamseg.monitor\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['monitor', '--help'])\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
