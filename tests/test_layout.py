"""The package's folders are the pipeline's stages, and imports point one way: down it.

Read from the source (every import statement, at module level or inside a function), not from
what happens to be imported at run time, so a lazy import that climbs back up is caught too."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "backbone_bench"
# earliest first; a module may import its own stage and earlier ones only
STAGES = [("backbone_bench", "errors", "paths", "environment", "clock", "cpu_share"), ("data",), ("models",), ("engine",), ("study",),
          ("analysis",), ("report",), ("recommend",), ("cli", "__main__")]


def module_name(path: Path) -> str:
    parts = ("backbone_bench",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("backbone_bench"):
                for alias in node.names:  # `from pkg import module` names the module itself
                    found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("backbone_bench")}
        graph[name] = found - {name}
    return graph


def stage(name: str) -> int:
    parts = name.split(".")
    first = parts[1] if len(parts) > 1 else parts[0]
    return next(i for i, members in enumerate(STAGES) if first in members)


def test_every_module_belongs_to_a_stage():
    for name in imports():
        assert stage(name) >= 0, name


def test_imports_point_down_the_pipeline():
    upward = [f"{a} (stage {stage(a)}) imports {b} (stage {stage(b)})"
              for a, deps in imports().items() for b in deps if stage(b) > stage(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph, state, cycles = imports(), {}, []

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("path", sorted((PACKAGE / "report").glob("*.py")), ids=lambda p: p.name)
def test_the_book_side_modules_are_short(path):
    assert len(path.read_text().splitlines()) <= 300, f"{path.name}: split it by job"


def test_every_subpackage_says_what_it_owns_and_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc and len(doc.split()) > 20, init


def test_the_planner_and_the_book_pages_start_without_torch():
    """Projecting a plan's hours and building a page compare device names and read records; torch's
    import (2.4 s of sweep_hours_text's 3.3 s under cProfile on 2 cores) is paid only by what trains or extracts."""
    import subprocess
    import sys

    modules = ["backbone_bench.study.budget", "backbone_bench.study.progress", "backbone_bench.study.plan",
               "backbone_bench.report", "backbone_bench.report.costs", "backbone_bench.report.sweep_hours",
               "backbone_bench.report.editions"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(m for m in ('torch', 'timm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
