"""The package's shape holds: no two modules import each other, no module past 600 lines, and the model contract is
read only through the descriptor (issue 22's acceptance, checked on every run instead of once by hand)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import litesr

PACKAGE = Path(litesr.__file__).parent
MAX_LINES = 600
CONTRACT_FIELDS = ("input_range", "color_space", "pad_multiple", "safe_precisions", "litesr_arch", "litesr_config",
                   "luma_uint8", "deploy_form", "preferred_param_key")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """litesr modules that ``module`` imports anywhere in its body (module level or inside functions)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in known else base)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in known and m != module}


def test_no_two_modules_import_each_other() -> None:
    known = _modules()
    edges = {m: _imported(m, p, known) for m, p in known.items()}
    assert len(edges) > 100 and sum(map(len, edges.values())) > 300  # the scan sees the package
    mutual = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if a in edges[b]})
    assert not mutual, f"modules importing each other: {mutual}"


def test_no_module_is_longer_than_600_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_the_model_contract_is_read_only_by_the_descriptor() -> None:
    pattern = re.compile(r"getattr\(\s*\w+\s*,\s*[\"'](" + "|".join(CONTRACT_FIELDS) + r")[\"']")
    assert pattern.search((PACKAGE / "descriptor.py").read_text(encoding="utf-8"))  # the pattern finds readers
    readers = sorted(str(p.relative_to(PACKAGE.parent)) for p in _modules().values()
                     if p.name != "descriptor.py" and pattern.search(p.read_text(encoding="utf-8")))
    assert not readers, f"read these through litesr.describe(model): {readers}"
