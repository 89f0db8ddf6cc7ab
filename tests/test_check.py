"""``gate run --check`` and ``hub run --check``: the shipped examples and broken copies, like ``nginx -t``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_systemd import SYSTEMD, _site_files


def lungta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], capture_output=True, text=True, timeout=60)


def example(tmp_path: Path, name: str, **replace: str) -> Path:
    """The shipped example beside the files it names, its state and database moved into tmp_path."""
    text = (SYSTEMD / name).read_text(encoding="utf-8")
    text = text.replace('"/var/lib/lungta/gate"', f'"{tmp_path / "state"}"').replace('"/var/lib/lungta/hub/hub.db"', f'"{tmp_path / "hub.db"}"')
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    _site_files(tmp_path)
    for kid in ("sales", "hub"):
        assert lungta("keygen", "--kid", kid, "--out", str(tmp_path)).returncode == 0
    (tmp_path / "trust.toml").write_text('[[key]]\nname = "sales"\npublic_key_file = "sales.pub"\n', encoding="utf-8")
    return path


def test_the_example_gate_toml_checks_ok(tmp_path):
    result = lungta("gate", "run", "--config", str(example(tmp_path, "gate.toml")), "--check")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] and summary["gate"] == "east-1" and summary["trusted_keys"] == 1 and summary["hub"] == "hub.potala.lan:8883 tls"
    assert not (tmp_path / "state").exists(), "--check creates nothing"


def test_the_example_hub_toml_checks_ok(tmp_path):
    result = lungta("hub", "run", "--config", str(example(tmp_path, "hub.toml")), "--check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["broker"] == "hub.potala.lan:8883 tls"
    assert not (tmp_path / "hub.db").exists(), "--check creates nothing"


def _one_line(result: subprocess.CompletedProcess, *names: str) -> None:
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert all(name in result.stderr for name in names), result.stderr


def test_a_gate_toml_with_a_missing_hub_key_file_is_one_line(tmp_path):
    path = example(tmp_path, "gate.toml", **{'trust = "hub.pub"': 'trust = "hub-key.pub"'})
    _one_line(lungta("gate", "run", "--config", str(path), "--check"), str(path), "hub.trust", "hub-key.pub")


def test_a_gate_toml_with_a_missing_cafile_is_one_line(tmp_path):
    path = example(tmp_path, "gate.toml")
    (tmp_path / "ca.crt").unlink()
    _one_line(lungta("gate", "run", "--config", str(path), "--check"), str(path), "hub.cafile", "ca.crt")


def test_a_hub_toml_with_a_missing_key_is_one_line_with_the_fix(tmp_path):
    path = example(tmp_path, "hub.toml", **{'key = "hub.key"': 'key = "keys/hub.key"'})
    _one_line(lungta("hub", "run", "--config", str(path), "--check"), str(path), "hub.key", "lungta site init")


def test_a_hub_toml_without_broker_table_says_so(tmp_path):
    path = example(tmp_path, "hub.toml")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("[broker]")], encoding="utf-8")
    result = lungta("hub", "run", "--config", str(path), "--check")
    assert result.returncode == 0 and json.loads(result.stdout)["broker"] == "127.0.0.1:1883 plaintext"
    assert result.stderr.count("no [broker] table") == 1 and "without TLS" in result.stderr


def test_a_hub_toml_whose_cafile_is_no_certificate_is_one_line(tmp_path):
    path = example(tmp_path, "hub.toml")
    (tmp_path / "ca.crt").write_text("-----BEGIN NOTHING-----\n", encoding="utf-8")
    _one_line(lungta("hub", "run", "--config", str(path), "--check"), str(path), "broker.cafile", "not a PEM CA certificate")
