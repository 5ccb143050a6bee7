"""Package layering of `live/`: no import cycles between packages, and only `live/host` imports AstrBot.

Run as a script to print the package-level import graph:
    .venv/bin/python tests/unit/test_package_imports.py
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

LIVE = Path(__file__).resolve().parents[2] / "live"


def unit_of(path: Path) -> str:
    """The package a module belongs to: `engine` for live/engine/turn.py, `config` for live/config.py."""
    parts = path.relative_to(LIVE).with_suffix("").parts
    return "live" if parts == ("__init__",) else parts[0]


def imported_modules(path: Path) -> set[str]:
    """Dotted names (relative to `live`, or absolute outside it) that `path` imports at any level."""
    module_parts = list(path.relative_to(LIVE).with_suffix("").parts)
    package = module_parts[:-1] if module_parts[-1] != "__init__" else module_parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module or "")
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:  # `from . import x`: x may be a module of that package
                found.update("live." + ".".join([*target, alias.name]) for alias in node.names)
            found.add("live." + ".".join(target) if target else "live")
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(LIVE.rglob("*.py")):
        unit = unit_of(path)
        graph[unit]
        for name in imported_modules(path):
            if name == "live" or name.startswith("live."):
                parts = name.split(".")[1:]
                if not parts:
                    target = "live"
                elif (LIVE / parts[0]).is_dir() or (LIVE / f"{parts[0]}.py").exists():
                    target = parts[0]
                else:
                    target = "live"  # a name defined in live/__init__.py
                if target != unit:
                    graph[unit].add(target)
    return graph


def astrbot_importers() -> set[str]:
    return {
        str(path.relative_to(LIVE.parent))
        for path in LIVE.rglob("*.py")
        if any(name == "astrbot" or name.startswith("astrbot.") for name in imported_modules(path))
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search (enough to name one of each)."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append([*cycle, nxt])
            else:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_no_import_cycle_between_packages():
    assert cycles(package_graph()) == []


def test_only_live_host_imports_astrbot():
    assert {path for path in astrbot_importers() if not path.startswith("live/host/")} == set()


def test_the_engine_imports_without_astrbot():
    code = (
        "import sys; import live.engine.session, live.rooms.room, live.protocol.astrbot_live; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'astrbot'))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=LIVE.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


if __name__ == "__main__":
    graph = package_graph()
    for unit in sorted(graph):
        print(f"{unit:10} -> {', '.join(sorted(graph[unit])) or '-'}")
    print("cycles:", cycles(graph) or "none")
    print("astrbot imported by:", ", ".join(sorted(astrbot_importers())))


def test_the_plugin_imports_itself_relatively():
    """Installed, the plugin is `data.plugins.astrbot_plugin_live`: there is no top-level `live` package."""
    absolute = {
        str(path.relative_to(LIVE.parent))
        for path in [*LIVE.rglob("*.py"), LIVE.parent / "main.py"]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "live")
        or (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "live" for alias in node.names))
    }
    assert absolute == set()
