"""Issuer key rotation: ``lungta site root``, ``lungta site trust sign|show`` and ``lungta hub trust publish``.

The site root key signs trust lists (protocol/trustlist.py) on the admin's
machine, offline, like a CA key; the hub only carries what it signed::

    lungta site trust sign --root SITE/root/site-root.key --add sales2.pub --remove sales --out SITE/trust-list.cose
    lungta hub trust publish SITE/trust-list.cose --config /etc/lungta/hub.toml

``sign`` starts from ``--base`` (a signed list, verified with the root, or a
trust.toml / .pub), by default from ``--out`` when that exists; the new
version is one above the base's unless ``--version`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CommandError
from .output import emit

if TYPE_CHECKING:
    from nacl.signing import SigningKey, VerifyKey

    from protocol.trust import TrustedKey
    from protocol.trustlist import TrustList

ROOT_NAME = "site-root"
KEEP_OFFLINE = "keep {key} OFFLINE (on the admin's machine or a USB stick in a safe, like a CA key): whoever holds it decides which ticket keys every gate trusts"


def add_site_commands(site: argparse._SubParsersAction) -> None:
    root = site.add_parser("root", help="make the site root key of a site made before trust lists", description="Writes DIR/root/site-root.key and .pub (refuses to overwrite).")
    root.add_argument("--site-dir", required=True, type=Path, metavar="DIR", help="the site folder ('lungta site init' made it), or any folder")
    root.set_defaults(run=run_root)

    trust = site.add_parser("trust", help="signed trust lists: the issuer keys every gate trusts").add_subparsers(dest="trust_command", required=True, metavar="ACTION")
    sign = trust.add_parser("sign", help="sign a trust list with the site root key", description=__doc__.split("\n\n")[2])
    sign.add_argument("--root", required=True, type=Path, metavar="KEY", help="the site root's private key (site-root.key)")
    sign.add_argument("--out", required=True, type=Path, metavar="FILE", help="where to write the signed list (replaced atomically)")
    sign.add_argument("--base", type=Path, metavar="FILE", help="the keys to start from: a signed list (.cose), a trust.toml or a .pub (default: --out if it exists, else none)")
    sign.add_argument("--add", action="append", default=[], type=Path, metavar="FILE", help="a .pub (named after the file) or a trust.toml (names and validity windows) to add; repeatable")
    sign.add_argument("--remove", action="append", default=[], metavar="NAME|KID", help="a key to withdraw, by name or kid (hex); repeatable")
    sign.add_argument("--site", metavar="SITE", help="the site (default: the base list's)")
    sign.add_argument("--version", type=int, metavar="N", help="the list's version (default: the base list's + 1, or 1); gates install only a higher one than they have")
    sign.set_defaults(run=run_sign)

    show = trust.add_parser("show", help="verify a signed trust list and print it")
    show.add_argument("file", type=Path, metavar="FILE")
    show.add_argument("--root", required=True, type=Path, metavar="PUB", help="the site root's public key (site-root.pub)")
    show.set_defaults(run=run_show)


def add_hub_commands(hub: argparse._SubParsersAction) -> None:
    trust = hub.add_parser("trust", help="publish a signed trust list to every gate").add_subparsers(dest="trust_command", required=True, metavar="ACTION")
    publish = trust.add_parser("publish", help="record a trust list; the running hub uses it and pushes it to every gate",
                               description="Checks the list against hub.toml's site_root and the newest one recorded, and records it (audited); the running hub notices within a second.")
    publish.add_argument("file", type=Path, metavar="FILE", help="the signed list ('lungta site trust sign' made it)")
    publish.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    publish.set_defaults(run=run_publish)


# ---- helpers ----------------------------------------------------------------------------


def _read_list_file(path: Path) -> bytes:
    from protocol.files import UnreadableFile, read_regular_file
    from protocol.trustlist import MAX_TRUST_LIST_BYTES

    try:
        return read_regular_file(path, MAX_TRUST_LIST_BYTES)
    except UnreadableFile as error:
        raise CommandError(str(error)) from None


def _open_list(path: Path, root: "VerifyKey") -> "TrustList":
    """A signed list read from ``path`` and verified with the root (one line naming the file if it fails)."""
    from protocol.trustlist import TrustListError, open_trust_list

    try:
        return open_trust_list(_read_list_file(path), root)
    except TrustListError as error:
        raise CommandError(f"{path}: not a trust list this root signed ({error.reason}): {error}") from None


def _base_keys(base: Path | None, root: "SigningKey") -> tuple[list["TrustedKey"], str | None, int]:
    """(keys, site, version) to start from."""
    from protocol.trust import load_trust_store

    if base is None:
        return [], None, 0
    if base.suffix == ".cose":
        trust_list = _open_list(base, root.verify_key)
        return list(trust_list.keys), trust_list.site, trust_list.version
    return list(load_trust_store(base)), None, 0


def _remove(keys: list["TrustedKey"], selectors: list[str]) -> list["TrustedKey"]:
    for selector in selectors:
        matching = [key for key in keys if selector in (key.name, key.kid.hex())]
        if not matching:
            raise CommandError(f"--remove {selector}: no key of that name or kid in the list ({', '.join(f'{k.name}:{k.kid.hex()}' for k in keys) or 'empty'})")
        keys = [key for key in keys if key not in matching]
    return keys


def _add(keys: list["TrustedKey"], files: list[Path]) -> list["TrustedKey"]:
    from protocol.trust import load_trust_store

    for path in files:
        for key in load_trust_store(path):
            clash = next((old for old in keys if old.name == key.name or old.kid == key.kid), None)
            if clash is not None:
                raise CommandError(f"--add {path}: key {key.name!r} (kid {key.kid.hex()}) clashes with {clash.name!r} (kid {clash.kid.hex()}) in the list; --remove it first")
            keys.append(key)
    return keys


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.new")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError as error:
        raise CommandError(f"--out {path}: cannot write: {error.strerror}") from None


# ---- commands ---------------------------------------------------------------------------


def run_root(args: argparse.Namespace) -> None:
    from protocol.keys import generate_signing_key, kid_for, write_key_pair

    key = generate_signing_key()
    private, public = write_key_pair(key, args.site_dir / "root", ROOT_NAME)  # a KeyFileError is one line
    emit({"site_root_key": str(private), "site_root_pub": str(public), "kid": kid_for(key.verify_key).hex(),
          "next": f"pin {public.name} on the hub (hub.toml site_root) and every gate ([gate] site_root); " + KEEP_OFFLINE.format(key=private)})


def run_sign(args: argparse.Namespace) -> None:
    from protocol.keys import load_signing_key
    from protocol.trustlist import TrustListError, describe, new_trust_list, sign_trust_list

    root = load_signing_key(args.root)
    base = args.base if args.base is not None else (args.out if args.out.exists() else None)
    keys, base_site, base_version = _base_keys(base, root)
    site = args.site or base_site
    if site is None:
        raise CommandError("--site is required when the base is not a signed trust list")
    if base_site is not None and site != base_site:
        raise CommandError(f"--site {site!r} is not the site of the base list {base} ({base_site!r})")
    keys = _add(_remove(keys, args.remove), args.add)
    version = args.version if args.version is not None else base_version + 1
    if version <= base_version:
        raise CommandError(f"--version {version} is not above the base list's {base_version}: gates would refuse it as a rollback")
    try:
        signed = sign_trust_list(new_trust_list(site, version, int(time.time()), keys), root)
    except TrustListError as error:
        raise CommandError(f"cannot sign: {error}") from None
    _write_atomically(args.out, signed)
    emit({**describe(_open_list(args.out, root.verify_key)), "out": str(args.out), "bytes": len(signed),
          "next": f"lungta hub trust publish {args.out} --config hub.toml"})


def run_show(args: argparse.Namespace) -> None:
    from protocol.keys import load_verify_key
    from protocol.trustlist import describe

    emit(describe(_open_list(args.file, load_verify_key(args.root))))


def run_publish(args: argparse.Namespace) -> None:
    from hub.console.actions import PublishTrustList

    from .config import load_hub_config
    from .console_cli import cli_perform
    from .paths import check_database

    config = load_hub_config(args.config)
    if config.site_root is None:
        raise CommandError(f"{args.config}: hub.site_root: not set; pin the site root's public key there first (lungta site root makes one)")
    signed = _read_list_file(args.file)
    check_database(config.database, f"{args.config}: hub.database", must_exist=False)
    outcome = cli_perform(config, PublishTrustList(signed))  # verified, checked newer, recorded and audited as the OS user
    emit({**{key: value for key, value in outcome.body.items() if key != "audit_seq"}, "next": "the running hub uses it and pushes it to every gate; see the TRUST column of: lungta hub gates"})
