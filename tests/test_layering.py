"""The package folders are the architecture: imports point inward, and test support never ships.

Parsed with ``ast`` (every ``import`` and ``from ... import``, lazy ones inside functions
included), so a rule broken anywhere in a package fails here with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("lungta", "protocol", "transport", "gate", "hub")
SUPPORT = ("testkit", "tests", "bench", "fuzz")
# package -> the top-level packages of this repository it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "protocol": ("gate", "hub", "transport", "lungta", *SUPPORT),  # bytes and signatures only
    "transport": ("gate", "hub", "lungta", *SUPPORT),  # moves protocol's bytes, knows neither side
    "gate": ("hub", "lungta", *SUPPORT),
    "hub": ("gate", *SUPPORT),  # (it reads lungta.__version__ for its OpenAPI document)
    "lungta": SUPPORT,  # the composition root knows every runtime part, no test support
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in sorted((ROOT / package).rglob("*.py"))
            for line, name in imported_packages(path) if name in forbidden]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_runtime_packages_import_only_inward_and_never_test_support(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The parser finds lazy and dotted imports, so the rules above cannot pass by missing them."""
    source = tmp_path / "module.py"
    source.write_text("import os\n\ndef f():\n    from testkit.broker import Broker\n    import hub.service\n", encoding="utf-8")
    assert imported_packages(source) == [(1, "os"), (4, "testkit"), (5, "hub")]


def test_setup_installs_every_runtime_package_and_no_test_support() -> None:
    text = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    include = text.split("[options.packages.find]")[1].split("[")[0]
    listed = {line.strip().removesuffix(".*") for line in include.splitlines()[1:] if line.strip() and "=" not in line}
    assert listed == set(RUNTIME)
