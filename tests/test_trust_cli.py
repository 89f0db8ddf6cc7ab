"""The operator's side of issuer key rotation: ``site init`` makes an offline root and list v1, ``add-gate`` pins
the root, ``site trust sign`` edits and numbers lists, ``hub trust publish`` records only the root's newer lists."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from lungta.config import load_gate_config, load_hub_config
from protocol.keys import load_verify_key, write_key_pair
from protocol.trustlist import open_trust_list
from tests.test_site import SITE, add_gate, lungta

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="site init needs mosquitto_passwd (apt-get install mosquitto)")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    result = lungta("site", "init", "--site", SITE, "--broker-host", "127.0.0.1", "--out", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    assert "OFFLINE" in json.loads(result.stdout)["offline"]
    return tmp_path / "site"


def _one_line_error(result, *words: str) -> None:
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _sign(site: Path, *args: str) -> dict:
    result = lungta("site", "trust", "sign", "--root", str(site / "root/site-root.key"), "--out", str(site / "trust-list.cose"), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _sales2(site: Path) -> Path:
    return write_key_pair(SigningKey.generate(), site / "issuers", "sales2")[1]


def test_site_init_makes_a_private_root_and_list_v1_and_pins_the_root_on_hub_and_gates(site: Path) -> None:
    assert oct((site / "root/site-root.key").stat().st_mode & 0o777) == "0o600"
    root = load_verify_key(site / "root/site-root.pub")
    first = open_trust_list((site / "trust-list.cose").read_bytes(), root, SITE)
    assert first.version == 1 and [key.name for key in first.keys] == ["sales"]
    assert load_verify_key(site / "issuers/sales.pub") == first.keys[0].verify_key
    assert load_hub_config(site / "hub/hub.toml").site_root == site / "hub/site-root.pub"
    folder = Path(add_gate(site, "east-1")["folder"])
    assert load_gate_config(folder / "gate.toml").site_root == folder / "site-root.pub"
    assert (folder / "site-root.pub").read_bytes() == (site / "root/site-root.pub").read_bytes()
    assert not (folder / "site-root.key").exists() and not (site / "hub/site-root.key").exists()


def test_sign_withdraws_and_adds_keys_on_top_of_the_last_list_with_the_next_version(site: Path) -> None:
    sales2 = _sales2(site)
    second = _sign(site, "--remove", "sales", "--add", str(sales2))
    assert second["version"] == 2 and [key["name"] for key in second["keys"]] == ["sales2"]
    third = _sign(site, "--add", str(site / "issuers/sales.pub"), "--version", "7")
    assert third["version"] == 7 and [key["name"] for key in third["keys"]] == ["sales2", "sales"]
    shown = lungta("site", "trust", "show", str(site / "trust-list.cose"), "--root", str(site / "root/site-root.pub"))
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == 7


def test_sign_starts_from_a_trust_toml_with_its_windows(site: Path, tmp_path: Path) -> None:
    result = lungta("site", "trust", "sign", "--root", str(site / "root/site-root.key"), "--base", str(site / "trust.toml"), "--site", SITE, "--out", str(tmp_path / "new.cose"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == 1


def test_sign_refuses_what_would_not_do_in_one_line(site: Path, tmp_path: Path) -> None:
    root = str(site / "root/site-root.key")
    out = str(site / "trust-list.cose")
    _one_line_error(lungta("site", "trust", "sign", "--root", root, "--remove", "nobody", "--out", out), "--remove nobody")
    _one_line_error(lungta("site", "trust", "sign", "--root", root, "--add", str(site / "issuers/sales.pub"), "--out", out), "clashes")
    _one_line_error(lungta("site", "trust", "sign", "--root", root, "--version", "1", "--out", out), "rollback")
    _one_line_error(lungta("site", "trust", "sign", "--root", root, "--site", "other", "--out", out), "--site")
    _one_line_error(lungta("site", "trust", "sign", "--root", root, "--out", str(tmp_path / "fresh.cose")), "--site is required")
    other = write_key_pair(SigningKey.generate(), tmp_path / "other", "site-root")[0]
    _one_line_error(lungta("site", "trust", "sign", "--root", str(other), "--out", out), "bad_signature")  # the base is not this root's
    assert open_trust_list((site / "trust-list.cose").read_bytes(), load_verify_key(site / "root/site-root.pub")).version == 1  # untouched


def test_site_root_makes_a_root_for_an_older_site_once(tmp_path: Path) -> None:
    made = lungta("site", "root", "--site-dir", str(tmp_path / "old-site"))
    assert made.returncode == 0, made.stderr
    assert "OFFLINE" in json.loads(made.stdout)["next"]
    _one_line_error(lungta("site", "root", "--site-dir", str(tmp_path / "old-site")), "already exists")


def _hub_toml(site: Path, tmp_path: Path) -> Path:
    hub_toml = site / "hub/hub.toml"
    hub_toml.write_text(hub_toml.read_text().replace('"/var/lib/lungta/hub/hub.db"', f'"{tmp_path / "hub.db"}"'))
    return hub_toml


def test_publish_records_only_newer_lists_of_the_pinned_root_and_audits_them(site: Path, tmp_path: Path) -> None:
    hub_toml = _hub_toml(site, tmp_path)
    _sign(site, "--remove", "sales", "--add", str(_sales2(site)))
    published = lungta("hub", "trust", "publish", str(site / "trust-list.cose"), "--config", str(hub_toml))
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["version"] == 2
    _one_line_error(lungta("hub", "trust", "publish", str(site / "trust-list.cose"), "--config", str(hub_toml)), "not newer", "--version")
    older = lungta("site", "trust", "sign", "--root", str(site / "root/site-root.key"), "--site", SITE, "--base", str(site / "trust.toml"), "--out", str(tmp_path / "v1.cose"))
    assert older.returncode == 0, older.stderr
    _one_line_error(lungta("hub", "trust", "publish", str(tmp_path / "v1.cose"), "--config", str(hub_toml)), "version 1 is not newer")  # a rollback to the leaked key
    other = write_key_pair(SigningKey.generate(), tmp_path / "other", "site-root")[0]
    forged = lungta("site", "trust", "sign", "--root", str(other), "--site", SITE, "--version", "9", "--base", str(site / "trust.toml"), "--out", str(tmp_path / "forged.cose"))
    assert forged.returncode == 0, forged.stderr
    _one_line_error(lungta("hub", "trust", "publish", str(tmp_path / "forged.cose"), "--config", str(hub_toml)), "bad_signature")
    (tmp_path / "garbage.cose").write_bytes(os.urandom(300))
    _one_line_error(lungta("hub", "trust", "publish", str(tmp_path / "garbage.cose"), "--config", str(hub_toml)), "malformed")
    audit = lungta("hub", "audit", "verify", "--config", str(hub_toml))
    assert audit.returncode == 0 and json.loads(audit.stdout)["entries"] == 1, audit.stdout


def test_publish_without_a_pinned_root_is_refused(site: Path, tmp_path: Path) -> None:
    hub_toml = _hub_toml(site, tmp_path)
    hub_toml.write_text(hub_toml.read_text().replace('site_root = "site-root.pub"', ""))
    _one_line_error(lungta("hub", "trust", "publish", str(site / "trust-list.cose"), "--config", str(hub_toml)), "site_root")


def test_a_gate_whose_pinned_root_is_missing_fails_check_naming_the_key(site: Path, tmp_path: Path) -> None:
    folder = Path(add_gate(site, "east-1")["folder"])
    gate_toml = folder / "gate.toml"
    gate_toml.write_text(gate_toml.read_text().replace('"/var/lib/lungta/gate"', f'"{tmp_path / "gate-state"}"'))
    (folder / "site-root.pub").unlink()
    _one_line_error(lungta("gate", "run", "--config", str(gate_toml), "--check"), "gate.site_root", "site-root.pub")
