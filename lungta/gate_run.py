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

from gate.daemon import GateDaemon, GateFailed
from gate.display import Display, LogDisplay, TerminalDisplay
from gate.feedback import load_catalogue
from gate.realname.check import IdCheck
from gate.realname.settings import open_id_reader
from gate.scanner.factory import open_scanner
from gate.sdnotify import SystemdNotifier
from gate.sync.client import HubSync
from gate.turnstile.build import build_turnstile
from gate.validator import open_validator
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
        with assembled_gate(config, notifier=notifier) as (daemon, _):
            daemon.run(stop)
    except GateFailed as exc:
        log.critical("gate stopped: %s", exc)
        return 1
    finally:
        notifier.close()
    return 0


@contextmanager
def assembled_gate(config: GateConfig, display: Display | None = None, notifier: SystemdNotifier | None = None) -> Iterator[tuple[GateDaemon, HubSync | None]]:
    """Every part of one gate built from its config, the hub link started; all closed on exit.

    The caller runs ``daemon.run(stop)``; the demo uses this too, with its own display.
    """
    with ExitStack() as stack:
        trust = load_trust_store(config.trust)
        validator = open_validator(config.state_dir, config.rules, trust, config.clock_jump_threshold_seconds)
        stack.callback(validator.close)
        scanners = [(open_scanner(s.settings), s.direction) for s in config.scanners]
        turnstile = build_turnstile(config.turnstile) if config.turnstile is not None else None
        if turnstile is not None:
            validator.passage_directions = frozenset(turnstile.directions)  # what the turnstile confirms, before any scan
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
            sync = HubSync(config.hub, validator, validator.revocations, load_trust_store(config.hub.trust), daemon.on_hub_command, daemon.status)
            sync.start()
            stack.callback(sync.stop)
            daemon.watch("hub-sync", lambda: sync._thread is not None and sync._thread.is_alive())
            sync.wait_caught_up(config.hub.catch_up_seconds)  # apply what is queued for this gate before deciding
        else:
            log.warning("no [hub] in %s: this gate runs standalone (no revocations, used marks or quotas from a hub)", config.file)
        log.info("starting gate %s at site %s from %s (%d trusted key(s))", config.rules.gate_id, config.rules.site, config.file, len(trust))
        log.info("policies: single-entry tickets while the hub is unreachable: %s; untrusted clock: %s", config.rules.offline_policy.value, config.rules.clock_policy.value)
        yield daemon, sync

