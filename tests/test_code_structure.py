"""House rules for bana_core, read from the source with ast: modules meet only through public
names, and no class or function grows past what a reader takes in at once."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "bana_core"
MAX_CLASS_LINES = 120
MAX_FUNCTION_LINES = 60


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_bana_module(root: Path, dotted: list[str]) -> bool:
    base = root.joinpath(*dotted)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def cross_module_private_uses(path: Path, root: Path = ROOT) -> list[str]:
    """``from m import _x`` and ``m._x`` (m a module of the package at ``root``) in ``path``, as 'line: what'.

    A class's private attributes used inside its own module (``obj._x``) are its own business."""
    package = list(path.parent.relative_to(root).parts)
    tree = ast.parse(path.read_text())
    module_aliases: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "bana_core":
                    module_aliases.add(a.asname or parts[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "bana_core":
                target = node.module.split(".")[1:]
            else:
                continue
            for a in node.names:
                if _private(a.name):
                    found.append(f"{node.lineno}: from {'.'.join(target)} import {a.name}")
                elif _is_bana_module(root, target + [a.name]):
                    module_aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def oversized(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{node.lineno}: {node.name} has {lines} lines (at most {limit})")
    return found


SOURCES = sorted(ROOT.rglob("*.py"))


def test_bana_core_modules_meet_only_through_public_names():
    bad = {str(p.relative_to(ROOT)): f for p in SOURCES if (f := cross_module_private_uses(p))}
    assert not bad, bad


def test_no_bana_core_class_or_function_is_oversized():
    bad = {str(p.relative_to(ROOT)): f for p in SOURCES if (f := oversized(p))}
    assert not bad, bad


@pytest.mark.parametrize("source, expected", [
    ("from .scenes import _paint\n", ["1: from data.synthetic.scenes import _paint"]),
    ("from ..voc import voc_xml, _parse\n", ["1: from data.voc import _parse"]),
    ("from . import scenes\nscenes._paint(1)\n", ["2: scenes._paint"]),
    ("import bana_core.io as bio\nbio._tmp()\n", ["2: bio._tmp"]),
    ("from .scenes import paint_object\nimport numpy as np\nnp._x\nobj._private\n", []),
])
def test_the_private_name_check_sees_each_form(tmp_path, source, expected):
    # A file placed as bana_core/data/synthetic/<x>.py, so relative imports resolve as there.
    fake_root = tmp_path / "bana_core"
    target = fake_root / "data" / "synthetic" / "probe.py"
    target.parent.mkdir(parents=True)
    for rel in ("data/synthetic/scenes.py", "data/voc.py", "io.py", "data/__init__.py",
                "data/synthetic/__init__.py"):
        (fake_root / rel).write_text("")
    target.write_text(source)
    assert cross_module_private_uses(target, fake_root) == expected


def test_the_size_check_counts_lines(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "m.py"
    path.write_text(f"def long():\n{body}\n\ndef short():\n    return 1\n")
    assert oversized(path) == [f"1: long has {MAX_FUNCTION_LINES + 1} lines (at most {MAX_FUNCTION_LINES})"]
