"""``lungta hub run|revoke|unrevoke|gates|command|quota``: the operator's side of a site hub.

``revoke``, ``command`` and ``quota set`` only write the hub database (a
revocation or command as the next seq of its stream, atomically; a cap as
it is); the running hub notices the commit within ~50 ms and signs and
publishes it (for a cap: the leases it decides on). So they work while the
broker or the hub is down, need no signing key, and there is one writer of
every stream's sequence.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import TIME_HELP, parse_instant, parse_ticket_id
from .errors import CommandError
from .output import emit
from .paths import check_database, hub_database

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.console.actions import Outcome
    from protocol.hub_messages import Command
    from hub.sqlite_store import SqliteHubStore

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction) -> None:
    hub = commands.add_parser("hub", help="run a site hub and operate it").add_subparsers(dest="hub_command", required=True, metavar="ACTION")

    run = hub.add_parser("run", help="run the hub: collect gate events and health, publish signed updates", description="Run the site hub until SIGINT/SIGTERM.")
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    run.add_argument("--check", action="store_true", help="only check the config and the files it names, print one line and exit (0: good, 2: the problem)")
    run.set_defaults(run=run_hub, default_log_level="INFO")

    revoke = hub.add_parser("revoke", help="revoke tickets at every gate of the site", description="Record the tickets as the next revocation delta; the running hub publishes it.")
    revoke.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    revoke.add_argument("ticket_ids", nargs="+", metavar="TICKET_ID_HEX", help="ticket ids (the cti, hex) to revoke")
    revoke.add_argument("--reason", metavar="TEXT", help="why (kept in the hub database, not sent to gates)")
    revoke.add_argument("--expires", metavar="ISO8601", help=f"when gates may forget the revocation: the ticket's expiry (default: revocation_days from now; {TIME_HELP}, the timezone of hub.toml)")
    revoke.set_defaults(run=run_revoke)

    unrevoke = hub.add_parser("unrevoke", help="take tickets out of the revocation set (a refund cancelled)",
                              description="Drop the tickets from the hub's set and tell every gate to take a fresh snapshot; the running hub publishes it.")
    unrevoke.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    unrevoke.add_argument("ticket_ids", nargs="+", metavar="TICKET_ID_HEX", help="ticket ids (the cti, hex) to admit again")
    unrevoke.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the hub's audit log, not sent to gates)")
    unrevoke.set_defaults(run=run_unrevoke)

    gates = hub.add_parser("gates", help="show every gate's health", description="One row per gate: status, last seen, backlog, lags, clock offset.")
    gates.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    gates.add_argument("--json", action="store_true", help="one JSON object per gate instead of a table")
    gates.set_defaults(run=run_gates)

    command = hub.add_parser("command", help="send a signed command to one gate", description="e.g. lungta hub command --config hub.toml gate-3 emergency_open on=true")
    command.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    command.add_argument("gate", metavar="GATE")
    command.add_argument("name", metavar="NAME", help="command name: emergency_open")
    command.add_argument("args", nargs="*", metavar="KEY=VALUE", help="arguments; VALUE is read as JSON when it parses (true, 3, \"x\"), else as text")
    command.set_defaults(run=run_command)

    add_quota_commands(hub)
    from . import console_cli, site_cli, trust_cli  # light: their work is imported when they run

    site_cli.add_gate_command(hub)
    trust_cli.add_hub_commands(hub)
    console_cli.add_console_commands(hub)  # token, user, audit


def add_quota_commands(hub: argparse._SubParsersAction) -> None:
    quota = hub.add_parser("quota", help="cap how many persons enter in a time slot", description="Time-slot caps, shared out to gates as leases (docs/quotas.md).")
    actions = quota.add_subparsers(dest="quota_command", required=True, metavar="ACTION")

    qset = actions.add_parser("set", help="set (or change) the cap of a slot", description="Record the cap; the running hub leases it out to every gate of the site.")
    qset.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    qset.add_argument("--site", required=True, metavar="SITE", help="the site of hub.toml (said again, so a cap is not set on the wrong hub)")
    qset.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the day, in the site's time zone")
    qset.add_argument("--slot", required=True, metavar="HH:MM-HH:MM", help="the slot, local time; 24:00 for midnight at the end")
    qset.add_argument("--cap", required=True, metavar="N", help="persons who may enter in the slot, all gates together")
    qset.set_defaults(run=run_quota_set)

    qlist = actions.add_parser("list", help="every slot with its cap, admitted and allocated figures", description="One row per slot: cap, persons admitted, places out at gates.")
    qlist.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    qlist.add_argument("--date", metavar="YYYY-MM-DD", help="only this day")
    qlist.add_argument("--json", action="store_true", help="one JSON object per slot instead of a table")
    qlist.set_defaults(run=run_quota_list)

    qshow = actions.add_parser("show", help="one slot, gate by gate", description="Per gate: newest lease (granted, expiry), places held, persons used, online.")
    qshow.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    qshow.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    qshow.add_argument("--slot", required=True, metavar="HH:MM-HH:MM")
    qshow.add_argument("--json", action="store_true", help="one JSON object per gate instead of a table")
    qshow.set_defaults(run=run_quota_show)


def _config(path: Path) -> "HubConfig":
    from .config import load_hub_config

    return load_hub_config(path)  # a ConfigError is one line on stderr (lungta/cli.py)


@contextmanager
def _store(config: "HubConfig", source: Path, must_exist: bool = False) -> Iterator["SqliteHubStore"]:
    """The hub database for a reading command (lungta/paths.py: every failure is one line)."""
    from hub.sqlite_store import SqliteHubStore

    with hub_database(config, source, SqliteHubStore, must_exist) as store:
        yield store


def run_hub(args: argparse.Namespace) -> None:
    import signal
    import threading

    from hub.service import HubService
    from hub.sqlite_tables import HubStoreError

    from .checks import check_hub_config
    from .console_cli import start_console

    config, summary = check_hub_config(args.config)
    if args.check:
        emit({"config": str(args.config), "ok": True, **summary})
        return
    try:
        service = HubService.from_config(config)
    except HubStoreError as error:  # locked by another hub, read-only, damaged: one line, exit 2
        raise CommandError(f"{args.config}: hub.database: {error}") from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.info("hub for site %s: broker %s:%d, database %s", config.site, config.broker.host, config.broker.port, config.database)
    console = start_console(config, service)  # hub.toml [http]: the operator console, in threads of this process
    try:
        service.run(stop)
    finally:
        if console is not None:
            console.stop()




def run_revoke(args: argparse.Namespace) -> None:
    config = _config(args.config)
    now = time.time()
    expires = parse_instant(args.expires, "--expires", config.timezone) if args.expires else int(now) + config.revocation_days * 86_400
    if expires <= now:
        raise CommandError("--expires is in the past: gates would drop the revocation at once")
    ticket_ids = tuple(dict.fromkeys(parse_ticket_id(text) for text in args.ticket_ids))
    check_database(config.database, f"{args.config}: hub.database", must_exist=False)
    outcome = _perform(config, args.config, "Revoke", ticket_ids, args.reason or "", expires)  # audited as the OS user
    emit({key: outcome.body[key] for key in ("revoked", "stream", "seqs", "expires")})


def run_unrevoke(args: argparse.Namespace) -> None:
    config = _config(args.config)
    ticket_ids = tuple(dict.fromkeys(parse_ticket_id(text) for text in args.ticket_ids))
    check_database(config.database, f"{args.config}: hub.database", must_exist=True)
    emit(_perform(config, args.config, "Unrevoke", ticket_ids, args.reason).body)  # audited as the OS user


def run_gates(args: argparse.Namespace) -> None:
    from hub.agreement import hub_settings
    from hub.health import gate_row, hub_blind
    from protocol.errors import KeyFileError
    from protocol.keys import kid_for, load_signing_key
    from protocol.topics import REVOCATIONS, USED

    config = _config(args.config)
    try:
        kid: bytes | None = kid_for(load_signing_key(config.key).verify_key)
    except KeyFileError:
        kid = None  # the hub key is not readable here: the gates' trusted hub keys are not compared
    hub = hub_settings(config.heartbeat_interval_s, config.timezone.key, kid)
    with _store(config, args.config, must_exist=True) as store:
        now_ms = int(time.time() * 1000)
        revocation_seq, used_seq = store.last_seq(REVOCATIONS), store.last_seq(USED)
        rows = [gate_row(health, now_ms, 3 * config.heartbeat_interval_s * 1000, revocation_seq, used_seq, hub) for health in store.gates()]
        blind = hub_blind(store.hub_liveness(), now_ms)
    if blind is not None:  # the gates may be deciding offline as they should: what the store holds is the hub's last view
        for row in rows:
            row.update(status="unknown", **({"cause": blind} if args.json else {}))
        if not args.json:
            sys.stdout.write(f"status unknown: {blind}; the rows are what the hub last heard\n")
    _emit_rows(rows, args.json, "no gate has reported yet")


def _argument(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"argument {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _perform(config: "HubConfig", source: Path, action: str, *fields: object) -> "Outcome":
    """One state-changing action through the console's dispatcher, the one place every action is
    checked and audited (here as the local OS user), whether it comes from the API, the UI or the CLI."""
    from hub.console import actions

    from .console_cli import cli_perform

    return cli_perform(config, getattr(actions, action)(*fields), source)


def _gate_command(name: str, texts: list[str]) -> "Command":
    """A command the gates know from its KEY=VALUE arguments, checked as the API checks it."""
    from hub.console.actions import ActionError, command_of

    try:
        return command_of(name, dict(_argument(text) for text in texts))
    except ActionError as error:
        raise CommandError(str(error)) from None


def run_command(args: argparse.Namespace) -> None:
    from protocol.topics import TopicError, check_name

    config = _config(args.config)
    try:
        check_name(args.gate, "gate")
    except TopicError as error:
        raise CommandError(str(error)) from None
    command = _gate_command(args.name, args.args)
    check_database(config.database, f"{args.config}: hub.database", must_exist=True)
    outcome = _perform(config, args.config, "SendCommand", (args.gate,), command)  # refuses a gate that never reported; audited as the OS user
    sent = outcome.body["sent"][0]
    emit({"gate": args.gate, "stream": sent["stream"], "seq": sent["seq"], "command": command.name, "args": command.args})


@contextmanager
def _quota_input() -> Iterator[None]:
    """What the operator typed for a quota, wrong: one line, as every CommandError."""
    from hub.quota import QuotaError

    try:
        yield
    except QuotaError as error:
        raise CommandError(str(error)) from None


def _cap(text: str) -> int:
    from hub.quota import QuotaError
    from hub.quota_text import check_cap

    try:
        cap = int(text)
    except ValueError:
        raise QuotaError(f"cap {text!r} is not a whole number of persons") from None
    return check_cap(cap)


def _emit_rows(rows: list[dict[str, object]], as_json: bool, empty: str) -> None:
    """A table for people (``empty`` when there is no row), or one JSON object per row."""
    from hub.health import render_table

    if as_json:
        for row in rows:
            emit(row)
    else:
        sys.stdout.write((render_table(rows) if rows else empty) + "\n")


def run_quota_set(args: argparse.Namespace) -> None:
    from hub.quota import Quota
    from hub.quota_text import parse_day, parse_slot

    config = _config(args.config)
    if args.site != config.site:
        raise CommandError(f"--site {args.site!r} is not the site of {args.config} ({config.site!r})")
    with _quota_input():
        quota = Quota(parse_day(args.date), *parse_slot(args.slot), _cap(args.cap))
    today = datetime.now(config.timezone).date().isoformat()
    if str(quota.day) < today:
        raise CommandError(f"--date {args.date} is in the past (today is {today} in {config.timezone.key}); no gate admits on that day any more")
    check_database(config.database, f"{args.config}: hub.database", must_exist=False)
    row = _perform(config, args.config, "SetQuota", quota).body  # checks overlaps; audited as the OS user
    if quota.cap < max(row["admitted"], row["allocated"]):
        sys.stderr.write(f"lungta: warning: cap {quota.cap} is below what is already admitted ({row['admitted']}) or out at gates ({row['allocated']}): no gate gets more places until the figures are under it\n")
    emit({key: value for key, value in row.items() if key != "audit_seq"})


def run_quota_list(args: argparse.Namespace) -> None:
    from hub.quota_text import parse_day, slot_row

    config = _config(args.config)
    with _quota_input():
        day = parse_day(args.date) if args.date else None
    with _store(config, args.config, must_exist=True) as store:
        rows = [slot_row(quota, store.quota_ledger(quota.day, quota.slot_start, 0), config.quota_skew_s * 1000) for quota in store.quotas(day, day)]
    _emit_rows(rows, args.json, "no quota is set" + (f" for {day}" if day else ""))


def run_quota_show(args: argparse.Namespace) -> None:
    from hub.quota_text import gate_row as lease_row
    from hub.quota_text import parse_day, parse_slot
    from hub.service import gate_slots, online_gates

    config = _config(args.config)
    with _quota_input():
        day, (start, end) = parse_day(args.date), parse_slot(args.slot)
    with _store(config, args.config, must_exist=True) as store:
        now_ms = int(time.time() * 1000)
        quota = next((quota for quota in store.quotas(day, day) if (quota.slot_start, quota.slot_end) == (start, end)), None)
        if quota is None:
            raise CommandError(f"no quota is set for {day} {args.slot} (see: lungta hub quota list --config {args.config})")
        online = online_gates(store, now_ms, config.heartbeat_interval_s)
        rows = [lease_row(gate, now_ms, config.quota_skew_s * 1000) for gate in gate_slots(store, quota, online, 0)]
    _emit_rows(rows, args.json, "no gate has reported yet")
