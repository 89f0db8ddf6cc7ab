import shutil
import stat
import subprocess

import pytest

from protocol.errors import KeyFileError
from protocol.keys import kid_for, load_signing_key, load_verify_key, write_key_pair
from protocol.trust import load_trust_store
from testkit.tickets import NOW

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")


def test_private_key_is_written_owner_only(key_files):
    private_path, _ = key_files
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600


def test_existing_private_key_is_never_overwritten(tmp_path, issuer_key, key_files):
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(issuer_key, tmp_path / "keys", "sales")


def test_keys_round_trip_through_pem(issuer_key, key_files):
    private_path, public_path = key_files
    assert bytes(load_signing_key(private_path)) == bytes(issuer_key)
    assert bytes(load_verify_key(public_path)) == bytes(issuer_key.verify_key)


@needs_openssl
def test_openssl_reads_both_pem_files_and_agrees_on_the_public_key(key_files):
    private_path, public_path = key_files
    derived = subprocess.run(["openssl", "pkey", "-in", str(private_path), "-pubout"], capture_output=True, text=True, check=True)
    assert derived.stdout == public_path.read_text()
    text = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(public_path), "-text", "-noout"], capture_output=True, text=True, check=True)
    assert "ED25519 Public-Key" in text.stdout


def test_kid_is_the_sha256_prefix_of_the_raw_public_key(issuer_key):
    import hashlib

    assert kid_for(issuer_key.verify_key) == hashlib.sha256(bytes(issuer_key.verify_key)).digest()[:8]


def test_garbage_key_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFileError, match="broken.pub"):
        load_verify_key(bad)


def test_trust_store_file_with_windows(tmp_path, issuer_key, key_files):
    _, public_path = key_files
    trust_file = tmp_path / "keys" / "trust.toml"
    trust_file.write_text(f'[[key]]\nname = "sales-2026"\npublic_key_file = "{public_path.name}"\nnot_before = 2026-01-01T00:00:00+08:00\nnot_after = 2027-01-01T00:00:00+08:00\n')
    store = load_trust_store(trust_file)
    key = store.key_for(kid_for(issuer_key.verify_key), NOW)
    assert key.name == "sales-2026"


@pytest.mark.parametrize(
    "content, complaint",
    [
        ("[[key]]\nname = 'x'\n", "needs public_key_file or public_key_pem"),
        ("[[key]]\nname = 'x'\npublic_key_file = 'sales.pub'\nnot_after = 2027-01-01\n", "not_after: expected a TOML datetime with an offset"),
        ("[[key]]\nname = 'x'\npublic_key_file = 'sales.pub'\ncolour = 'red'\n", "unknown field"),
        ("key = 'x'\n", "array of tables"),
        ("[[key]\n", "not valid TOML"),
    ],
)
def test_bad_trust_store_says_what_and_where(tmp_path, key_files, content, complaint):
    trust_file = tmp_path / "keys" / "trust.toml"
    trust_file.write_text(content)
    with pytest.raises(KeyFileError, match=complaint) as caught:
        load_trust_store(trust_file)
    assert "trust.toml" in str(caught.value)
