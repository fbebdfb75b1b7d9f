"""The README's layer table is the import map: every file is listed, and no module imports
from its own or a higher layer (except files of its own package folder).  Lazy imports
inside functions count; the check reads the source with ``ast`` and runs nothing."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("refimpl", "figures", "benchmarks")


def _layer_table():
    """{repo-relative path, or folder ending in /: layer} from the README's "Layout" table.

    In a row, a name with a slash is a path from the repository root; a bare name is
    in the folder of the path before it.
    """
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    section = section[:section.index("\n## ", 1)]
    table = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if not m:
            continue
        folder = ""
        for item in re.findall(r"`([^`]+)`", m.group(2)):
            path = item if "/" in item else folder + item
            if not path.endswith("/"):
                folder = path.rpartition("/")[0] + "/"
            table[path] = int(m.group(1))
    return table


TABLE = _layer_table()


def _files():
    for top in CHECKED:
        for p in sorted((ROOT / top).rglob("*.py")):
            yield p.relative_to(ROOT).as_posix()


def _layer_of(path, table=None):
    """Layer and the table entry that gives it (the file itself, else its folder)."""
    table = TABLE if table is None else table
    if path in table:
        return table[path], path
    for entry, layer in table.items():
        if entry.endswith("/") and path.startswith(entry):
            return layer, entry
    return None, None


def _module_file(name):
    """refimpl.a.b -> the file that defines it (a module or a package's __init__)."""
    parts = name.split(".")
    while parts:
        base = ROOT.joinpath(*parts)
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand.relative_to(ROOT).as_posix()
        parts.pop()
    return None


def _imports(path):
    """The refimpl files imported anywhere in ``path`` (resolved through relative imports)."""
    src = ROOT / path
    tree = ast.parse(src.read_text())
    pkg = path[:-3].replace("/", ".")
    pkg = pkg[:-len(".__init__")] if pkg.endswith(".__init__") else pkg.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [f"{mod}.{a.name}" for a in node.names] or [mod]
        for name in names:
            if name.split(".")[0] == "refimpl":
                f = _module_file(name)
                if f is not None and f != path:
                    out.add(f)
    return out


@pytest.mark.parametrize("path", list(_files()))
def test_every_file_is_in_the_layer_table(path):
    layer, _ = _layer_of(path)
    assert layer is not None, (f"{path} is not in the README's layer table: add a row (or "
                               "a name to a row) with its layer")


def _violations(path, table=None):
    """The imports of ``path`` from its own or a higher layer (outside its package folder)."""
    layer, entry = _layer_of(path, table)
    bad = []
    for dep in sorted(_imports(path)):
        dep_layer, dep_entry = _layer_of(dep, table)
        same_package = entry.endswith("/") and dep_entry == entry
        if dep_layer is None or (dep_layer >= layer and not same_package):
            bad.append(f"{dep} (layer {dep_layer})")
    return bad


@pytest.mark.parametrize("path", [p for p in _files() if _layer_of(p)[0] is not None])
def test_imports_go_down_the_layers(path):
    bad = _violations(path)
    assert not bad, (f"{path} (layer {_layer_of(path)[0]}) imports from its own or a "
                     f"higher layer: {bad}")


def test_the_check_can_fail():
    """With train.py moved to model.py's layer, train's import of model is flagged; a lazy
    import inside a function is seen (estimator's and the commands' are such)."""
    table = dict(TABLE)
    table["refimpl/train.py"] = _layer_of("refimpl/model.py")[0]
    assert "refimpl/model.py (layer 4)" in _violations("refimpl/train.py", table)
    assert "refimpl/train.py" in _imports("refimpl/baselines/mlp.py")
    assert "refimpl/datasets/__init__.py" in _imports("refimpl/commands/sagp.py")
