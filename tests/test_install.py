"""deploy/install.sh into a scratch prefix: install, run the installed lungta, upgrade, uninstall.

The venv is made from Debian's python3 with its site packages (as on 32-bit ARM, where
PyPI has no wheels), and pip installs only this package, offline (--no-deps --no-index):
what is tested is the script's layout, not PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _system_python_can_build() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys, setuptools, wheel, venv; sys.exit(sys.version_info < (3, 11))"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _system_python_can_build(), reason="needs Debian's python3 (3.11+) with python3-setuptools and python3-wheel")


def source_copy(root: Path) -> Path:
    """What pip builds from: a copy of the package, so its build/ and egg-info land there, not in the checkout."""
    copy = root / "source"
    if not copy.exists():
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
        for name in ("setup.cfg", "pyproject.toml", "README.md"):
            copy.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, copy / name)
        for package in ("lungta", "protocol", "gate", "hub"):
            shutil.copytree(ROOT / package, copy / package, ignore=ignore)
    return copy


def install(action: str, root: Path, role: str = "both", **extra: str) -> subprocess.CompletedProcess:
    env = os.environ | {"SOURCE": str(source_copy(root)),
        "PREFIX": str(root / "opt/lungta"), "SYSCONFDIR": str(root / "etc/lungta"), "STATEDIR": str(root / "var/lib/lungta"),
        "UNITDIR": str(root / "units"), "BINDIR": str(root / "bin"), "PYTHON": str(SYSTEM_PYTHON), "SYSTEM_SITE_PACKAGES": "1",
        "PIP_ARGS": "--no-deps --no-build-isolation --no-index", "LUNGTA_USER": "nobody", **extra,
    }
    env.pop("PYTHONPATH", None)  # the installed lungta must run from its own venv, not this checkout
    return subprocess.run(["sh", str(ROOT / "deploy/install.sh"), action, role], env=env, capture_output=True, text=True, timeout=600)


def test_install_upgrade_uninstall_in_a_scratch_prefix(tmp_path: Path) -> None:
    result = install("install", tmp_path)
    assert result.returncode == 0, result.stderr
    lungta = tmp_path / "opt/lungta/bin/lungta"
    assert (tmp_path / "bin/lungta").resolve() == lungta.resolve()
    version = subprocess.run([str(tmp_path / "bin/lungta"), "--version"], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert version.returncode == 0 and version.stdout.startswith("lungta "), version.stderr
    # the units run the installed command on the installed config, and point at installed docs
    unit = (tmp_path / "units/lungta-gate.service").read_text()
    assert f"ExecStart={lungta} gate run --config {tmp_path}/etc/lungta/gate.toml" in unit
    documentation = [word.removeprefix("file://") for line in unit.splitlines() if line.startswith("Documentation=") for word in line.split("=", 1)[1].split()]
    assert documentation and all(Path(doc).is_file() for doc in documentation)
    assert (tmp_path / "etc/lungta/hub.toml.example").read_text() == (ROOT / "systemd/hub.toml").read_text()
    assert oct((tmp_path / "var/lib/lungta/gate").stat().st_mode & 0o777) == "0o700"

    # an upgrade keeps what the operator edited
    (tmp_path / "etc/lungta/gate.toml").write_text("# edited by the operator\n")
    result = install("upgrade", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc/lungta/gate.toml").read_text() == "# edited by the operator\n"
    assert subprocess.run([str(lungta), "--version"], capture_output=True, timeout=60).returncode == 0

    result = install("uninstall", tmp_path)
    assert result.returncode == 0, result.stderr
    assert not lungta.exists() and not (tmp_path / "units/lungta-gate.service").exists() and not os.path.lexists(tmp_path / "bin/lungta")
    assert (tmp_path / "etc/lungta/gate.toml").exists() and (tmp_path / "var/lib/lungta/gate").is_dir(), "configs and state are kept"

    users_before = Path("/etc/passwd").read_text()
    result = install("uninstall", tmp_path, PURGE="1")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "etc/lungta").exists() and not (tmp_path / "var/lib/lungta").exists()
    assert Path("/etc/passwd").read_text() == users_before, "a user the script did not make is never removed"


def test_upgrade_without_an_install_and_a_wrong_role_are_one_line(tmp_path: Path) -> None:
    result = install("upgrade", tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no Lungta installed" in result.stderr
    result = install("install", tmp_path, role="turnstile")
    assert result.returncode == 2 and "expected gate, hub or both" in result.stderr
