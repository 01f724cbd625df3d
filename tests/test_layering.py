"""The package's layering: no import cycle between oodmix's modules (imports inside functions
count too), the core LightningModule knows nothing of stacked sweeps, and no module imports
another's private names. Read from the source (ast), so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import oodmix

PACKAGE = Path(oodmix.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement of `name`,
    relative imports made absolute."""
    path = MODULES[name]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{base}" if base else package
            found.append((base, [alias.name for alias in node.names]))
    return found


def edges(name: str) -> set[str]:
    """The oodmix modules `name` imports (a name taken from a package counts as its module
    when it is one)."""
    targets = set()
    for module, names in imports(name):
        candidates = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
        for target in candidates:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                targets.add(target)
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_and_only_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_oodmix_modules():
    graph = {name: edges(name) for name in MODULES}
    assert "oodmix.runs.build" in graph["oodmix.config.preflight"]  # imports in functions count
    assert cycles(graph) == []


def test_the_core_module_does_not_import_stacking():
    for name in MODULES:
        if name.startswith(("oodmix.models", "oodmix.runs", "oodmix.callbacks")):
            stacked = [t for t in edges(name) if t.startswith("oodmix.stacking")]
            assert not stacked, f"{name} imports {stacked}"


def test_no_module_imports_a_private_name_of_another():
    for name in MODULES:
        for module, names in imports(name):
            if module.startswith("oodmix") and module != name:
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                assert not private, f"{name} imports {private} from {module}"


def test_the_entry_point_is_thin():
    """oodmix.train is Hydra's entry: it calls the run library and defines no run of its own."""
    names = {
        node.name
        for node in ast.parse(MODULES["oodmix.train"].read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    assert names == {"_run_job", "_hydra_main", "main"}
    assert "oodmix.runs.job" in edges("oodmix.train")
