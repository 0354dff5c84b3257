"""Every third-party module the workflow imports at run time is a declared dependency of the package.

The workflow's run time is bana_core, the workflow scripts and the Snakefile's rules; a module they
import that only the test extra (or an accident of the machine) provides would break
`pip install -e . && snakemake` for a new user. Imports inside functions count too.
"""
from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def imported_top_level_modules(paths) -> set[str]:
    names = set()
    for path in paths:
        text = path.read_text()
        if path.suffix == ".smk" or path.name == "Snakefile":
            # Snakemake files are not Python; their import lines are.
            text = "\n".join(line for line in text.splitlines() if re.match(r"\s*(import|from)\s", line))
            text = "\n".join(line.strip() for line in text.splitlines())
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def declared_distributions() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def runtime_files():
    yield from (ROOT / "bana_core").rglob("*.py")
    yield from (ROOT / "workflow_scripts").glob("*.py")
    yield from (ROOT / "rules").glob("*.smk")
    yield ROOT / "Snakefile"


def test_every_runtime_import_is_a_declared_dependency():
    modules = imported_top_level_modules(runtime_files())
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m not in {"bana_core", "snakemake"}}
    assert {"torch", "numpy", "pydensecrf", "pycocotools"} <= third_party  # the scan sees lazy imports
    providers = metadata.packages_distributions()
    declared = declared_distributions()
    missing = {}
    for module in sorted(third_party):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & declared:
            missing[module] = sorted(dists) or "not installed"
    assert not missing, f"imported at run time but not in pyproject's dependencies: {missing}"


def test_report_dependency_is_declared():
    # `snakemake --report` imports pygments, which snakemake brings only with its `reports` extra;
    # the report rule is part of the default target, so the package must ask for that extra.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    snakemake = [d for d in deps if d.startswith("snakemake[")]
    assert snakemake and "reports" in snakemake[0].split("[", 1)[1].split("]")[0].split(",")
    assert 'pygments; extra == "reports"' in (metadata.requires("snakemake") or [])


def test_the_ci_lower_bounds_are_the_declared_bounds():
    # .ci/run runs the inner loop on .ci/lower-bounds.txt: it proves pyproject's bounds only while
    # each pinned release is the bound pyproject declares.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"  # Snakemake 9
    # packaging's Version compares 2.6 and 2.6.0 as equal
    bounds = {}
    for req in map(Requirement, project["dependencies"]):
        lower = [spec.version for spec in req.specifier if spec.operator == ">="]
        if lower:
            bounds[canonicalize_name(req.name)] = Version(lower[0])
    pins = {}
    for line in (ROOT / ".ci" / "lower-bounds.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            (spec,) = Requirement(line).specifier
            pins[canonicalize_name(Requirement(line).name)] = Version(spec.version)
    assert {"torch", "torchvision", "numpy", "jsonschema"} <= set(pins)
    for name, version in pins.items():
        assert version == bounds[name], (name, version, bounds[name])
