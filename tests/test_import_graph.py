"""The package's layers import downwards only: no module of segearth/ or app/ can reach itself
through its imports, module-level, deferred inside a function or for type checking only (a
deferred or typing-only import only hides a cycle: checkpoints <-> model, evaluation <-> report
and result <-> maps were such). And app/ is a client of the library like any other: it imports
the library's public names only, never the model's internals (`segearth.model`)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("segearth", "app")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], typing: bool = True) -> set[str]:
    """Project modules `path` imports anywhere in it; under `if TYPE_CHECKING:` too unless not
    `typing`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only and not typing:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from x import y`: the submodule x.y where there is one, else x itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(typing: bool = True) -> dict[str, set[str]]:
    paths = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules, typing) for p in paths}


def library_names_used(path: Path) -> set[str]:
    """What `path` imports from segearth, as dotted names: `from segearth.x import y` gives
    "segearth.x.y", `import segearth.x` "segearth.x"."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "segearth"}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module \
                and node.module.split(".")[0] == "segearth":
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def private_or_internal(name: str) -> bool:
    """A name app/ must not import: the model's internals or anything with a leading underscore."""
    parts = name.split(".")
    return parts[:2] == ["segearth", "model"] or any(part.startswith("_") for part in parts)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_has_the_known_edges():
    graph = import_graph()
    assert "segearth.regions" in graph["segearth.result"]  # from .regions import ...
    assert "segearth.geo" in graph["app.sources"]  # from segearth.geo import ...
    assert "segearth.checkpoints" in graph["segearth.predictor"]  # deferred, inside a method
    assert "segearth.result" in graph["segearth.maps"]  # under `if TYPE_CHECKING:`
    assert "segearth.result" not in import_graph(typing=False)["segearth.maps"]


def test_the_checks_see_a_private_import(tmp_path):
    client = tmp_path / "client.py"
    client.write_text("from segearth.model.generation import AnswerStream\n"
                      "from segearth.predictor import _sigmoid\nimport segearth.maps\n")
    used = library_names_used(client)
    assert used == {"segearth.model.generation.AnswerStream", "segearth.predictor._sigmoid",
                    "segearth.maps"}
    assert [private_or_internal(name) for name in sorted(used)] == [False, True, True]


def test_app_imports_only_the_librarys_public_names():
    used = {f"{path.relative_to(REPO)}: {name}" for path in (REPO / "app").rglob("*.py")
            for name in library_names_used(path) if private_or_internal(name)}
    assert not used, sorted(used)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    graph = import_graph()
    cycle = find_cycle({k: v for k, v in graph.items() if k.split(".")[0] == package})
    assert cycle is None, " -> ".join(cycle)
