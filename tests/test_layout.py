"""The package's shape, as the design card and the lesson ask for it: bp_train/nn/ stands alone, lower
files never import higher ones, and no file or function grows past what a reader can hold."""

import ast
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "bp_train"
# From the bottom up. A module may import modules of a lower rank, or of its own package.
RANKS = {
    "errors": 0,
    "nn": 1,
    "machine": 2,
    "config": 3,
    "files": 4,
    "data": 5,
    "training": 6,
    "views": 7,
    "exercises": 7,
    "serve": 8,
    "export": 8,
    "tune": 8,
    "cli": 9,
    "launch": 10,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth (lazy imports count)."""
    own = module_name(path).split(".") if module_name(path) else []
    package = own if path.name == "__init__.py" else own[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                anchor = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join(["bp_train", *anchor, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] if not node.module else [base]
            found += [(node.lineno, name) for name in names]
    return found


def rank_of(name: str) -> tuple[int, str] | None:
    """(rank, the RANKS key) of a bp_train module name, or None for the package itself."""
    inner = name.removeprefix("bp_train").lstrip(".")
    for key in sorted(RANKS, key=len, reverse=True):
        if inner == key or inner.startswith(key + "."):
            return RANKS[key], key
    return None


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", sorted((PACKAGE / "nn").glob("*.py")), ids=lambda p: p.name)
def test_the_lesson_imports_nothing_from_outside_it(path):
    allowed = set(sys.stdlib_module_names) | {"numpy", "cupy"}  # NumPy, and CuPy for the GPU (backend.py)
    for line, name in imported_modules(path):
        top = name.split(".")[0]
        if top == "bp_train":
            assert name.startswith("bp_train.nn"), f"{path.name}:{line} imports {name}, outside bp_train/nn/"
        else:
            assert top in allowed or top == "__future__", f"{path.name}:{line} imports {name}"


@pytest.mark.parametrize("name", ["layers.py", "losses.py", "simple_network.py"])
def test_the_students_first_files_import_numpy_and_the_lesson_alone(name):
    """What a student reads first is the textbook's code: NumPy, and the layers before it (no backend)."""
    allowed = {"numpy", "__future__", "collections", "bp_train.nn.layers", "bp_train.nn.gradient"}
    for line, module in imported_modules(PACKAGE / "nn" / name):
        assert module in allowed or module.split(".")[0] in ("numpy", "__future__", "collections"), (
            f"nn/{name}:{line} imports {module}"
        )
    assert "backend" not in (PACKAGE / "nn" / name).read_text()
    if name == "simple_network.py":  # a first network read in one sitting, docstrings included
        assert (PACKAGE / "nn" / name).read_text().count("\n") <= 150


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_files_never_import_higher_ones(path):
    here = rank_of("bp_train." + module_name(path)) if module_name(path) else None
    if here is None:
        return  # bp_train/__init__.py: the public names, each imported on first use
    for line, name in imported_modules(path):
        if not name.startswith("bp_train") or name in ("bp_train", "bp_train.__version__"):
            continue  # the package's version is a constant, not a module
        there = rank_of(name)
        assert there is not None, f"{path}:{line} imports {name}, which has no place in RANKS"
        assert there[0] < here[0] or there[1] == here[1], (
            f"{path.relative_to(ROOT)}:{line} ({here[1]}, rank {here[0]}) imports {name} ({there[1]}, rank {there[0]})"
        )


def import_graph() -> dict[str, set[str]]:
    """{module: the bp_train modules it imports}, lazy imports included; `from .x import name` counts as
    an import of module x, not of a module called name."""
    modules = {".".join(filter(None, ["bp_train", module_name(p)])): p for p in SOURCES}

    def module_of(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    return {
        module: {
            found
            for _, name in imported_modules(path)
            if name.startswith("bp_train")
            if (found := module_of(name)) not in (None, module)
        }
        for module, path in modules.items()
    }


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None: a depth-first walk that meets a module still on
    its own path has closed a loop."""
    state: dict[str, str] = {}  # 'open' while on the path, 'done' once everything below it was seen

    def walk(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported) :] + [imported]
            if imported not in state and (cycle := walk(imported, path + [imported])):
                return cycle
        state[module] = "done"
        return None

    return next((cycle for module in sorted(graph) if module not in state if (cycle := walk(module, [module]))), None)


def test_no_two_modules_import_each_other_even_through_others_or_inside_one_folder():
    cycle = import_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_inside_one_folder_and_through_a_third_module():
    assert import_cycle({"a.x": {"a.y"}, "a.y": {"a.x"}}) == ["a.x", "a.y", "a.x"]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_every_module_has_a_place_and_every_folder_is_a_package():
    for path in SOURCES:
        name = module_name(path)
        assert not name or rank_of("bp_train." + name) is not None, f"{path} has no place in RANKS"
    for folder in (p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))):
        assert (folder / "__init__.py").is_file(), f"{folder} is not a package: `pip install .` would leave it out"
    # a folder of data files (the page) is shipped as package data
    pyproject = (ROOT / "pyproject.toml").read_text()
    for folder in (p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__" and not any(p.glob("*.py"))):
        package = ".".join(folder.parent.relative_to(ROOT).parts)
        assert f'"{package}" = ["{folder.name}/*"]' in pyproject, f"{folder} is not shipped as package data"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_and_functions_stay_short(path):
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= 400, f"{path.relative_to(ROOT)} has {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {length} lines long"


def test_the_lesson_is_the_first_thing_ls_shows_and_its_init_gives_the_reading_order():
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert "nn" in folders and len(list(PACKAGE.glob("*.py"))) <= 4  # the tool's modules live in folders
    order = (PACKAGE / "nn" / "__init__.py").read_text(encoding="utf-8")
    listed = [word for word in order.split() if word.endswith(".py")]
    assert set(listed) == {p.name for p in (PACKAGE / "nn").glob("*.py") if p.name != "__init__.py"}
    for name in listed:  # each file opens with the idea it teaches: a docstring of several lines
        doc = ast.get_docstring(ast.parse((PACKAGE / "nn" / name).read_text(encoding="utf-8")))
        assert doc and len(doc.splitlines()) >= 2, f"nn/{name} has no opening docstring"


def test_the_reading_orders_first_network_runs_as_written():
    doc = ast.get_docstring(ast.parse((PACKAGE / "nn" / "__init__.py").read_text(encoding="utf-8")))
    example = doc[doc.index("A first network, by hand:") :]
    code = "\n".join(line[4:] for line in example.splitlines() if line.startswith("    "))
    printed = []
    namespace = {"print": printed.append}
    exec(compile(code, "nn/__init__.py docstring", "exec"), namespace)
    assert set(namespace["grads"]) == {"W1", "b1", "W2", "b2"} and printed[0] < 1e-8
    from bp_train.nn.simple_network import SimpleNetwork

    untrained = SimpleNetwork(input_size=784, hidden_sizes=[50], output_size=10)
    assert namespace["net"].loss(namespace["x"], namespace["t"]) < untrained.loss(namespace["x"], namespace["t"])
