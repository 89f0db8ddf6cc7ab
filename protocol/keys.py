"""Ed25519 signing keys as the PEM files ``openssl pkey`` reads, and their kid.

PEM (PKCS#8 private, SubjectPublicKeyInfo public) is what every other team's
tooling already speaks; the signing itself is libsodium through PyNaCl.
The kid is the first 8 bytes of SHA-256 over the raw 32-byte public key, so
anyone holding the public key derives the same kid without a registry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.signing import SigningKey, VerifyKey

from .errors import KeyFileError

KID_LENGTH = 8


def kid_for(verify_key: VerifyKey) -> bytes:
    """The key id a ticket carries: SHA-256(raw public key)[:8]."""
    return hashlib.sha256(bytes(verify_key)).digest()[:KID_LENGTH]


def generate_signing_key() -> SigningKey:
    return SigningKey.generate()


def private_key_pem(key: SigningKey) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(bytes(key)).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: VerifyKey) -> bytes:
    return Ed25519PublicKey.from_public_bytes(bytes(key)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_pair(key: SigningKey, directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (mode 0600, created that way, never world-readable) and NAME.pub."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    if private_path.exists():
        raise KeyFileError(f"{private_path}: already exists; refusing to overwrite a signing key")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    public_path.write_bytes(public_key_pem(key.verify_key))
    return private_path, public_path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None


def load_signing_key(path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PKCS#8 PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return SigningKey(raw)


def load_verify_key(path: Path) -> VerifyKey:
    return parse_verify_key(_read(path), str(path))


def parse_verify_key(pem: bytes, origin: str) -> VerifyKey:
    """Parse a SubjectPublicKeyInfo PEM; ``origin`` names where it came from in errors."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{origin}: not a SubjectPublicKeyInfo PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{origin}: not an Ed25519 key")
    return VerifyKey(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
