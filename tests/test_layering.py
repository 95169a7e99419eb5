"""Layering: no import cycles among gankit's modules, and the core imports no task or network.

Every import counts, also those inside functions: a lazy import hides a cycle from Python's import
machinery but not from a reader. ``from gankit.a import b`` is an edge to ``gankit.a.b`` when that
is a module, else to ``gankit.a``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for t in targets:
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    "module, forbidden",
    [
        (
            "gankit.config",
            ("gankit.tasks", "gankit.nets", "gankit.gan.objectives", "gankit.data.augment"),
        ),
        (
            "gankit.inference.sampling",
            ("gankit.tasks", "gankit.inference.loading", "gankit.engine.checkpoint"),
        ),
        (
            "gankit.tasks.base",
            ("gankit.engine.loop", "gankit.evaluation.evaluate", "gankit.tasks.gan"),
        ),
        (
            "gankit.tasks.gan",
            ("gankit.evaluation.evaluate", "gankit.engine.loop", "gankit.engine.health"),
        ),
    ],
)
def test_core_modules_stay_below_what_they_must_not_know(module, forbidden):
    seen, todo = set(), [module]
    graph = import_graph()
    while todo:  # everything the module imports, directly or not
        m = todo.pop()
        for n in graph[m] - seen:
            seen.add(n)
            todo.append(n)
    bad = sorted(n for n in seen if n.startswith(forbidden))
    assert not bad, f"{module} reaches {bad}"


_TASK_MODULES = ("gankit.tasks.",)


@pytest.mark.parametrize(
    "module", ["gankit.engine.loop", "gankit.evaluation.report", "gankit.inference.export"]
)
def test_the_loop_report_and_export_import_no_task(module):
    """They work for any task: the protocol (tasks.base) and the roles, never a task module."""
    direct = import_graph()[module]
    bad = sorted(n for n in direct if n.startswith(_TASK_MODULES) and n != "gankit.tasks.base")
    assert not bad, f"{module} imports {bad}"


def test_tasks_do_not_import_the_distributed_module():
    """Tasks ask the runtime (rank_rows, mean_over_ranks, optimizer_step); only the engine knows
    about ranks."""
    graph = import_graph()
    bad = sorted(
        m for m in graph if m.startswith("gankit.tasks") and "gankit.engine.distributed" in graph[m]
    )
    assert not bad, f"{bad} import gankit.engine.distributed"
