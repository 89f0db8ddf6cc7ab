"""``lungta gate run --config gate.toml``: build the gate from its config and run it.

The composition root of the gate: the only place that knows every part.
SIGTERM and SIGINT stop it in order (see gate/daemon.py); a bad config, a
missing device or a locked state directory stops it at start with one line.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from gate.daemon import GateDaemon, GateFailed
from gate.display import Display, LogDisplay, TerminalDisplay
from gate.feedback import load_catalogue
from gate.health import GateHealth
from gate.parts import GateParts, open_gate_parts
from gate.realname.check import IdCheck
from gate.realname.settings import open_id_reader
from gate.scanner.factory import open_scanner
from gate.sdnotify import SystemdNotifier
from gate.sync.client import HubSync
from gate.trustlist import TrustListKeeper
from gate.turnstile.build import build_turnstile
from gate.validator import Validator
from protocol.keys import load_verify_key
from protocol.trust import load_trust_store

from .config import GateConfig, load_gate_config

log = logging.getLogger("lungta.gate")


def run_gate(args: argparse.Namespace) -> int:
    config = load_gate_config(args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    notifier = SystemdNotifier()
    try:
        with assembled_gate(config, notifier=notifier) as gate:
            gate.daemon.run(stop)
    except GateFailed as exc:
        log.critical("gate stopped: %s", exc)
        return 1
    finally:
        notifier.close()
    return 0


@dataclass(frozen=True)
class AssembledGate:
    """A built gate: the daemon to run, its hub sync (None without [hub]) and the parts they share."""

    daemon: GateDaemon
    sync: HubSync | None
    parts: GateParts


@contextmanager
def assembled_gate(config: GateConfig, display: Display | None = None, notifier: SystemdNotifier | None = None) -> Iterator[AssembledGate]:
    """Every part of one gate built from its config, the hub link started; all closed on exit.

    The gate's state, revocation set, clock and hub link state are opened
    here once and handed to the validator and the hub sync, each taking only
    what it uses. The caller runs ``gate.daemon.run(stop)``; the demo uses
    this too, with its own display.
    """
    with ExitStack() as stack:
        trust = load_trust_store(config.trust)
        health = GateHealth()
        parts = open_gate_parts(config.state_dir, health, config.clock_jump_threshold_seconds)
        stack.callback(parts.close)
        scanners = [(open_scanner(s.settings), s.direction) for s in config.scanners]
        turnstile = build_turnstile(config.turnstile) if config.turnstile is not None else None
        passage_directions = frozenset(turnstile.directions) if turnstile is not None else frozenset()  # what the turnstile confirms
        validator = Validator(config.rules, trust, parts.store, parts.revocations, parts.clock, parts.hub, health, passage_directions)
        trust_lists = TrustListKeeper(config.state_dir, config.rules.site, load_verify_key(config.site_root) if config.site_root else None,
                                      lambda trust_list: validator.replace_trust(trust_list.trust_store()))
        trust_lists.load_saved()  # the last list the hub sent, before any scan and without any network
        if display is None:
            display = TerminalDisplay(sys.stdout) if config.mode == "handheld" else LogDisplay()
        id_check = None
        if config.realname is not None:
            id_check = IdCheck(validator, [open_id_reader(r) for r in config.realname.readers], config.realname)
            id_check.start()
            stack.callback(id_check.stop)
        daemon = GateDaemon(validator, scanners, turnstile, display, load_catalogue(), notifier, config.scan_queue_size, id_check=id_check)
        sync = None
        if config.hub is not None:
            sync = HubSync(config.hub, config.rules, parts.store, parts.revocations, parts.clock, parts.hub, load_trust_store(config.hub.trust),
                           daemon.on_hub_command, daemon.status, trust_lists=trust_lists)
            sync.start()
            stack.callback(sync.stop)
            daemon.watch("hub-sync", sync.alive)
            sync.wait_caught_up(config.hub.catch_up_seconds)  # apply what is queued for this gate before deciding
        else:
            log.warning("no [hub] in %s: this gate runs standalone (no revocations, used marks or quotas from a hub)", config.file)
        log.info("starting gate %s at site %s from %s (%d trusted key(s)%s)", config.rules.gate_id, config.rules.site, config.file, len(validator.trust),
                 f", trust list version {trust_lists.version}" if trust_lists.version is not None else "")
        log.info("policies: single-entry tickets while the hub is unreachable: %s; untrusted clock: %s", config.rules.offline_policy.value, config.rules.clock_policy.value)
        yield AssembledGate(daemon, sync, parts)

