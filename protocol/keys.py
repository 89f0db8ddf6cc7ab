"""Ed25519 signing keys as the PEM files ``openssl pkey`` reads, and their kid.

PEM (PKCS#8 private, SubjectPublicKeyInfo public) is what every other team's
tooling already speaks; the signing itself is libsodium through PyNaCl.
The kid is the first 8 bytes of SHA-256 over the raw 32-byte public key, so
anyone holding the public key derives the same kid without a registry.

The usual encodings (what OpenSSL and this module write) have a fixed DER
prefix and are read directly; anything else goes through ``cryptography``,
imported only then, so a command that signs one ticket starts fast.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from .errors import KeyFileError
from .files import UnreadableFile, read_regular_file

KID_LENGTH = 8
MAX_KEY_FILE_BYTES = 64 * 1024
# DER of PKCS#8 v1 Ed25519 private key and of an Ed25519 SubjectPublicKeyInfo, up to the 32 key bytes.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def kid_for(verify_key: VerifyKey) -> bytes:
    """The key id a ticket carries: SHA-256(raw public key)[:8]."""
    return hashlib.sha256(bytes(verify_key)).digest()[:KID_LENGTH]


def generate_signing_key() -> SigningKey:
    return SigningKey.generate()


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"".join([f"-----BEGIN {label}-----\n".encode(), *(line + b"\n" for line in lines), f"-----END {label}-----\n".encode()])


def private_key_pem(key: SigningKey) -> bytes:
    return _pem("PRIVATE KEY", _PKCS8_PREFIX + bytes(key))


def public_key_pem(key: VerifyKey) -> bytes:
    return _pem("PUBLIC KEY", _SPKI_PREFIX + bytes(key))


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``mode`` from the start; never follow a symlink, never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_directory(directory: Path) -> None:
    """Make ``directory`` (0700 when new); refuse a file or a folder we cannot write in."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise KeyFileError(f"{directory}: is a file, not a directory") from None
    except OSError as exc:
        raise KeyFileError(f"{directory}: cannot create directory: {exc.strerror}") from None
    if not directory.is_dir():
        raise KeyFileError(f"{directory}: is a file, not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise KeyFileError(f"{directory}: not writable")


def write_key_pair(key: SigningKey, directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (mode 0600) and NAME.pub (0644), both created new: no symlink is followed, nothing overwritten."""
    _key_directory(directory)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a signing key or follow a link")
    write_private_file(private_path, private_key_pem(key))
    write_private_file(public_path, public_key_pem(key.verify_key), 0o644)
    return private_path, public_path


def _der(pem: bytes, label: str) -> bytes | None:
    """The DER inside a single PEM block with ``label``; None when it is not exactly that."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != f"-----BEGIN {label}-----".encode() or lines[-1].strip() != f"-----END {label}-----".encode():
        return None
    try:
        return base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None


def read_key_file(path: Path) -> bytes:
    """A key file's bytes: a regular file of at most MAX_KEY_FILE_BYTES (never /dev/zero or a FIFO)."""
    try:
        return read_regular_file(path, MAX_KEY_FILE_BYTES)
    except UnreadableFile as error:
        raise KeyFileError(str(error)) from None


def load_signing_key(path: Path) -> SigningKey:
    pem = read_key_file(path)
    der = _der(pem, "PRIVATE KEY")
    if der is not None and len(der) == len(_PKCS8_PREFIX) + 32 and der.startswith(_PKCS8_PREFIX):
        return SigningKey(der[len(_PKCS8_PREFIX) :])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PKCS#8 PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return SigningKey(raw)


def load_verify_key(path: Path) -> VerifyKey:
    return parse_verify_key(read_key_file(path), str(path))


def parse_verify_key(pem: bytes, origin: str) -> VerifyKey:
    """Parse a SubjectPublicKeyInfo PEM; ``origin`` names where it came from in errors."""
    der = _der(pem, "PUBLIC KEY")
    if der is not None and len(der) == len(_SPKI_PREFIX) + 32 and der.startswith(_SPKI_PREFIX):
        return VerifyKey(der[len(_SPKI_PREFIX) :])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{origin}: not a SubjectPublicKeyInfo PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{origin}: not an Ed25519 key")
    return VerifyKey(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
