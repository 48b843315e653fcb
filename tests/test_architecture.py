"""The import rule of docs/architecture.md, checked by reading every import of the package.

The layer table is read from the doc itself (the block after "Layers, lowest first"), so the doc
and the code cannot drift apart: a module imports only from its own layer or the ones below, every
module is in the table, and the extra rules hold (the UI never imports a backend implementation).
"""

from __future__ import annotations

import ast
import re

from tests.paths import REPO

PACKAGE = REPO / "azml_magics"
DOC = REPO / "docs" / "architecture.md"


def layer_table() -> dict[str, int]:
    """Group name -> layer number, from the doc's table (``N  group group ...`` lines)."""
    text = DOC.read_text()
    block = text.split("Layers, lowest first", 1)[1].split("```", 2)[1]
    table = {}
    for line in block.strip().splitlines():
        number, *groups = line.split("#", 1)[0].split()
        for group in groups:
            table[group] = int(number)
    return table


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group_of(module: str, table: dict[str, int]) -> str:
    """The longest table entry that is the module or a package above it (``azml_magics.`` left off)."""
    rest = module.removeprefix("azml_magics").removeprefix(".") or "azml_magics"
    parts = rest.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in table:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer of docs/architecture.md; add it to the table")


def imports_of(path, module: str) -> set[str]:
    """Every azml_magics module this file imports, at the top or inside a function (lazy imports count)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("azml_magics")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("azml_magics"):
                continue
            for alias in node.names:  # `from . import api` imports the module azml_magics.api
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found


def all_edges():
    table = layer_table()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for target in imports_of(path, module):
            yield module, group_of(module, table), target, group_of(target, table), table


def test_the_doc_has_a_layer_table_naming_real_modules():
    table = layer_table()
    assert len(set(table.values())) >= 6
    for group in table:
        path = PACKAGE.joinpath(*group.split(".")) if group != "azml_magics" else PACKAGE
        assert path.with_suffix(".py").exists() or path.is_dir(), f"the doc's layer table names '{group}', which does not exist"


def test_every_module_is_in_a_layer():
    table = layer_table()
    for path in PACKAGE.rglob("*.py"):
        group_of(module_name(path), table)


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    upward = [f"{src} ({sg}, layer {t[sg]}) imports {dst} ({dg}, layer {t[dg]})"
              for src, sg, dst, dg, t in all_edges() if t[dg] > t[sg]]
    assert upward == []


def test_the_ui_never_imports_a_backend_and_backends_never_import_the_front():
    bad = []
    for src, sg, dst, dg, _ in all_edges():
        if sg.startswith("ui") and re.match(r"backends\.(local|azure)", dg):
            bad.append(f"{src} imports {dst}")
        if re.match(r"backends", sg) and dg in ("ui", "magics", "magic_parsers", "api", "plan"):
            bad.append(f"{src} imports {dst}")
    assert bad == []


def test_the_rule_checker_sees_lazy_and_relative_imports():
    """The checker itself: a lazy relative import inside a function is found (it is how most imports look)."""
    found = imports_of(PACKAGE / "magics.py", "azml_magics.magics")
    assert "azml_magics.api" in found  # imported inside a method: `from . import api`
