"""Code versions: which bana_core files a workflow script runs, and a hash of them.

Rules pass ``code_version(script)`` as a param, so editing library code a rule runs reruns that
rule and nothing else (docs/rerunning.md).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _module_file(dotted: list[str]) -> Path | None:
    """The file of ``bana_core.<dotted>`` (a module, or a package's ``__init__.py``), if any."""
    base = PACKAGE_DIR.joinpath(*dotted)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_files(path: Path) -> set[Path]:
    """bana_core files that ``path`` imports directly (anywhere in it, lazy imports included),
    with the ``__init__.py`` of every package on the way, since Python runs those too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    # The dotted package ``path`` is in, relative to bana_core (None: outside bana_core).
    package = list(path.parent.relative_to(PACKAGE_DIR).parts) if path.is_relative_to(PACKAGE_DIR) else None
    targets: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == "bana_core"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = package[: len(package) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "bana_core":
                module = node.module.split(".")[1:]
            else:
                continue
            targets.append(module)
            # `from bana_core.data import voc` imports the submodule data/voc.
            targets += [module + [a.name] for a in node.names if _module_file(module + [a.name]) is not None]
    files = set()
    for dotted in targets:
        for depth in range(len(dotted) + 1):  # bana_core/__init__, data/__init__, data/voc
            f = _module_file(dotted[:depth])
            if f is not None:
                files.add(f)
    return files


@functools.lru_cache(maxsize=None)
def script_modules(script: str | Path) -> tuple[str, ...]:
    """The bana_core files a workflow script runs: what it imports, transitively inside
    bana_core (static analysis of ``import`` statements), as sorted paths relative to bana_core."""
    script = Path(script).resolve()
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for f in _imported_files(todo.pop()):
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return tuple(sorted(str(f.relative_to(PACKAGE_DIR)) for f in seen))


@functools.lru_cache(maxsize=None)
def code_version(script: str | Path) -> str:
    """Content hash of the bana_core files ``script`` runs (``script_modules``).

    Rules pass it as a param, so that editing library code a rule runs reruns that rule and
    nothing else (Snakemake's own `code` trigger only sees the rule's script, not the library).
    The set is derived from the imports, never listed by hand, so it cannot drift.
    """
    digest = hashlib.sha256()
    for name in script_modules(script):
        digest.update(name.encode())
        digest.update((PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]
