"""``lungta hub run|revoke|gates|command``: the operator's side of a site hub.

``revoke`` and ``command`` only write the hub database (the next seq of the
stream, atomically); the running hub notices the commit within ~50 ms and
signs and publishes it. So they work while the broker or the hub is down,
need no signing key, and there is one writer of every stream's sequence.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from hub.config import ConfigError, HubConfig, load_config
from hub.health import gate_row, render_table
from hub.service import HubService
from hub.sqlite_store import SqliteHubStore
from protocol.messages import Command, RevocationEntry
from protocol.topics import REVOCATIONS, USED, TopicError, check_name

from .errors import CommandError
from .output import emit
from .timeparse import parse_instant

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction) -> None:
    hub = commands.add_parser("hub", help="run a site hub and operate it").add_subparsers(dest="hub_command", required=True, metavar="ACTION")

    run = hub.add_parser("run", help="run the hub: collect gate events and health, publish signed updates", description="Run the site hub until SIGINT/SIGTERM.")
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    run.set_defaults(run=run_hub)

    revoke = hub.add_parser("revoke", help="revoke tickets at every gate of the site", description="Record the tickets as the next revocation delta; the running hub publishes it.")
    revoke.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    revoke.add_argument("ticket_ids", nargs="+", metavar="TICKET_ID_HEX", help="ticket ids (the cti, hex) to revoke")
    revoke.add_argument("--reason", metavar="TEXT", help="why (kept in the hub database, not sent to gates)")
    revoke.add_argument("--expires", metavar="ISO8601", help="when gates may forget the revocation: the ticket's expiry (default: revocation_days from now)")
    revoke.set_defaults(run=run_revoke)

    gates = hub.add_parser("gates", help="show every gate's health", description="One row per gate: status, last seen, backlog, lags, clock offset.")
    gates.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    gates.add_argument("--json", action="store_true", help="one JSON object per gate instead of a table")
    gates.set_defaults(run=run_gates)

    command = hub.add_parser("command", help="send a signed command to one gate", description="e.g. lungta hub command --config hub.toml gate-3 emergency_open on=true")
    command.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    command.add_argument("gate", metavar="GATE")
    command.add_argument("name", metavar="NAME", help="command name, e.g. emergency_open")
    command.add_argument("args", nargs="*", metavar="KEY=VALUE", help="arguments; VALUE is read as JSON when it parses (true, 3, \"x\"), else as text")
    command.set_defaults(run=run_command)


def _config(path: Path) -> HubConfig:
    try:
        return load_config(path)
    except ConfigError as error:
        raise CommandError(str(error)) from None


def _store(config: HubConfig) -> SqliteHubStore:
    return SqliteHubStore(config.database, config.synchronous)


def run_hub(args: argparse.Namespace) -> None:
    config = _config(args.config)
    if not config.key.exists():
        raise CommandError(f"{args.config}: hub.key: {config.key} does not exist (create it with: lungta keygen --kid hub --out DIR)")
    service = HubService.from_config(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.warning("hub for site %s: broker %s:%d, database %s", config.site, config.broker.host, config.broker.port, config.database)
    service.run(stop)


def _ticket_id(text: str) -> bytes:
    try:
        ticket_id = bytes.fromhex(text)
    except ValueError:
        raise CommandError(f"ticket id {text!r} is not hex") from None
    if not 1 <= len(ticket_id) <= 32:
        raise CommandError(f"ticket id {text!r} is {len(ticket_id)} bytes, expected 1..32")
    return ticket_id


def run_revoke(args: argparse.Namespace) -> None:
    config = _config(args.config)
    now = time.time()
    expires = parse_instant(args.expires, "--expires") if args.expires else int(now) + config.revocation_days * 86_400
    if expires <= now:
        raise CommandError("--expires is in the past: gates would drop the revocation at once")
    entries = [RevocationEntry(_ticket_id(text), expires) for text in args.ticket_ids]
    store = _store(config)
    try:
        rows = store.add_revocations(entries, args.reason, int(now * 1000), config.snapshot_chunk)
    finally:
        store.close()
    emit({"revoked": len(entries), "stream": REVOCATIONS, "seqs": [row.seq for row in rows], "expires": expires})


def run_gates(args: argparse.Namespace) -> None:
    config = _config(args.config)
    store = _store(config)
    try:
        now_ms = int(time.time() * 1000)
        revocation_seq, used_seq = store.last_seq(REVOCATIONS), store.last_seq(USED)
        rows = [gate_row(health, now_ms, 3 * config.heartbeat_interval_s * 1000, revocation_seq, used_seq) for health in store.gates()]
    finally:
        store.close()
    if args.json:
        for row in rows:
            emit(row)
    else:
        sys.stdout.write(render_table(rows) + "\n")


def _argument(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"argument {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def run_command(args: argparse.Namespace) -> None:
    config = _config(args.config)
    try:
        check_name(args.gate, "gate")
    except TopicError as error:
        raise CommandError(str(error)) from None
    command = Command(args.name, dict(_argument(text) for text in args.args))
    store = _store(config)
    try:
        row = store.add_command(args.gate, command, int(time.time() * 1000))
    finally:
        store.close()
    emit({"gate": args.gate, "stream": row.stream, "seq": row.seq, "command": command.name, "args": command.args})
