"""The hub sync is handed the gate's parts; it never reaches for them through the validator.

A layering rule read from the source: a module of gate/sync importing
gate/validator.py (absolutely or relatively, at the top or inside a
function) would let the sync client pull the store, the revocation set or
the clock out of the validator again.
"""

from __future__ import annotations

import ast
from pathlib import Path

SYNC = Path(__file__).resolve().parents[3] / "gate" / "sync"
FORBIDDEN = "gate.validator"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, resolved to its absolute dotted name."""
    package = "gate.sync"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_imported_modules_resolves_relative_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from ..validator import Validator\nfrom .. import validator\nimport gate.validator as v\nfrom .inbox import HubInbox\n", encoding="utf-8")
    found = imported_modules(sample)
    assert {"gate.validator", "gate.validator.Validator", "gate.sync.inbox"} <= found


def test_no_module_of_gate_sync_imports_the_validator():
    modules = sorted(SYNC.glob("*.py"))
    assert len(modules) >= 4, f"gate/sync not found at {SYNC}"
    offenders = {path.name: sorted(name for name in imported_modules(path) if name == FORBIDDEN or name.startswith(FORBIDDEN + "."))
                 for path in modules}
    assert {name: found for name, found in offenders.items() if found} == {}
