"""``--check``: everything a config names, checked before a daemon starts (like ``nginx -t``).

Loading a config checks its keys; these checks go on to the files and
folders it names (trust stores, keys, TLS files, the state directory, the
hub database), so a typo is found by the technician at the box, in one
line, and not by the daemon restarting in a loop. ``gate run`` and ``hub
run`` make the same checks before they start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.errors import KeyFileError
from protocol.files import UnreadableFile, read_regular_file
from transport.mqtt import BrokerConfig

from .errors import CommandError
from .paths import check_database, check_writable_dir

if TYPE_CHECKING:
    from hub.config import HubConfig

log = logging.getLogger(__name__)


def _where(config: Path, key: str) -> str:
    return f"{config}: {key}"


def check_broker_files(config: Path, table: str, broker: BrokerConfig) -> None:
    """Each TLS file the broker settings name is a readable regular file."""
    for key in ("cafile", "certfile", "keyfile"):
        path = getattr(broker, key)
        if path is None:
            continue
        try:
            read_regular_file(path)
        except UnreadableFile as error:
            raise CommandError(f"{_where(config, f'{table}.{key}')}: {error}") from None
    if broker.tls:
        from transport.mqtt import TlsFileError, tls_context

        try:
            tls_context(broker)
        except TlsFileError as error:
            raise CommandError(f"{_where(config, f'{table}.{error.key}')}: {error.path}: {error.reason}") from None
    if not broker.tls:
        log.warning("%s: [%s] connects to %s:%d without TLS; set cafile for a site network", config, table, broker.host, broker.port)


def _trust(config: Path, key: str, path: Path) -> int:
    from protocol.trust import load_trust_store

    try:
        return len(load_trust_store(path))
    except KeyFileError as error:
        raise CommandError(f"{_where(config, key)}: {error}") from None


def _site_root(config: Path, key: str, path: Path) -> None:
    """The pinned site root public key loads (a private key or a typo would leave trust lists refused)."""
    from protocol.keys import load_verify_key

    try:
        load_verify_key(path)
    except KeyFileError as error:
        raise CommandError(f"{_where(config, key)}: {error}") from None


def check_gate_config(path: Path) -> dict[str, object]:
    """Load gate.toml and check what it names; a summary of what the gate will be."""
    from .config import load_gate_config

    config = load_gate_config(path)
    check_writable_dir(config.state_dir, _where(path, "gate.state_dir"))
    keys = _trust(path, "gate.trust", config.trust)
    if config.site_root is not None:
        _site_root(path, "gate.site_root", config.site_root)
    summary: dict[str, object] = {
        "site": config.rules.site,
        "gate": config.rules.gate_id,
        "mode": config.mode,
        "trusted_keys": keys,
        "scanners": [type(scanner.settings).__name__.removesuffix("Settings").lower() for scanner in config.scanners],
        "turnstile": config.turnstile.kind if config.turnstile is not None else None,
        "hub": None,
    }
    if config.hub is not None:
        _trust(path, "hub.trust", config.hub.trust)
        check_broker_files(path, "hub", config.hub.broker)
        summary["hub"] = f"{config.hub.broker.host}:{config.hub.broker.port}" + (" tls" if config.hub.broker.tls else " plaintext")
    return summary


def check_hub_config(path: Path) -> tuple["HubConfig", dict[str, object]]:
    """Load hub.toml and check what it names: the signing key, the database, the broker's files.

    Returns the config (so it is read, and its warnings logged, once) and a summary."""
    from protocol.keys import load_signing_key

    from .config import load_hub_config

    config = load_hub_config(path)
    try:
        load_signing_key(config.key)
    except KeyFileError as error:
        hint = " (create it with: lungta keygen --kid hub --out DIR, or lungta site init)" if not config.key.exists() else ""
        raise CommandError(f"{_where(path, 'hub.key')}: {error}{hint}") from None
    check_database(config.database, _where(path, "hub.database"), must_exist=False)
    if config.site_root is not None:
        _site_root(path, "hub.site_root", config.site_root)
    check_broker_files(path, "broker", config.broker)
    return config, {
        "site": config.site,
        "database": str(config.database),
        "broker": f"{config.broker.host}:{config.broker.port}" + (" tls" if config.broker.tls else " plaintext"),
    }
