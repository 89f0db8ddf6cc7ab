"""``lungta gate ...``: validating tickets at a gate and inspecting its local state.

Handheld validators used offline run exactly these commands on their own
state directory, so what they decide and record is what a gate would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from gate.cache.revocations import RevocationSet
from gate.cache.state import GateStore
from gate.clock import GateClock
from gate.decision import Decision
from gate.rules import GateRules
from gate.validator import Validator, open_validator
from protocol.claims import describe_claims
from protocol.trust import load_trust_store

from . import gate_run
from .errors import CommandError
from .output import emit
from .arguments import parse_instant, parse_ticket_id

DEFAULT_REVOCATION_DAYS = 400


def add_commands(commands: argparse._SubParsersAction) -> None:
    gate = commands.add_parser("gate", help="validate tickets, inspect and run a gate").add_subparsers(dest="gate_command", required=True, metavar="ACTION")
    validate = gate.add_parser(
        "validate",
        help="decide on ticket texts offline, one JSON line each",
        description="Decide on each TEXT (or each line of stdin) as a gate would; prints one JSON object per ticket. "
        "With --state the decision is recorded there (used tickets, events) before it is printed; without it a "
        "throw-away state is used for this run.",
    )
    validate.add_argument("--trust", required=True, type=Path, metavar="PATH", help="trust store (trust.toml or a .pub)")
    validate.add_argument("--site", required=True, help="the site this gate belongs to")
    validate.add_argument("--gate-id", default="handheld", help="this gate's id in events and 'already used' messages (default handheld)")
    validate.add_argument("--zone", metavar="ZONE", help="inner zone this gate guards (default: the main entrance)")
    validate.add_argument("--state", type=Path, metavar="DIR", help="gate state directory (revocations, used tickets, outbox)")
    validate.add_argument("--at", metavar="ISO8601", help="decide as if at this time (default: now, from the gate's trusted clock)")
    validate.add_argument("texts", nargs="*", metavar="TEXT", help="ticket QR texts; read from stdin when none are given")
    validate.set_defaults(run=run_validate)

    revoke = gate.add_parser("revoke", help="revoke tickets in a gate's local state", description="Add ticket ids (hex, as 'lungta ticket inspect' prints them) to the local revocation set.")
    revoke.add_argument("--state", required=True, type=Path, metavar="DIR", help="gate state directory")
    revoke.add_argument("--expires", metavar="ISO8601", help=f"when the entries may be dropped (default: {DEFAULT_REVOCATION_DAYS} days from now)")
    revoke.add_argument("ticket_ids", nargs="+", metavar="TICKET_ID")
    revoke.set_defaults(run=run_revoke)

    state = gate.add_parser("state", help="print a gate's local state as JSON (counts, sequences, backlog, clock)")
    state.add_argument("--state", required=True, type=Path, metavar="DIR", help="gate state directory")
    state.set_defaults(run=run_state)

    gate_run.add_command(gate)


def _texts(args: argparse.Namespace) -> Iterator[str]:
    if args.texts:
        yield from args.texts
        return
    for line in sys.stdin:
        if line.strip():
            yield line.strip()


def decision_record(decision: Decision) -> dict[str, object]:
    return {
        "decision": "grant" if decision.granted else "deny",
        "reason": decision.reason.value,
        "detail": decision.detail,
        "persons": decision.persons,
        "flagged": decision.flagged,
        "ticket": describe_claims(decision.ticket) if decision.ticket else None,
    }


def _open(args: argparse.Namespace, stack: ExitStack) -> Validator:
    state_dir = args.state if args.state else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lungta-validate-")))
    rules = GateRules(site=args.site, gate_id=args.gate_id, zone=args.zone)
    clock = None
    if args.at:
        pinned = float(parse_instant(args.at, "--at"))
        clock = GateClock(high_water=0, wall=lambda: pinned, monotonic=lambda: 0.0)
    validator = open_validator(state_dir, rules, load_trust_store(args.trust), clock=clock)
    stack.callback(validator.close)
    return validator


def run_validate(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        validator = _open(args, stack)
        validator.hub_online = True  # a handheld's operator answers for offline use; no hub policy applies here
        for text in _texts(args):
            result = validator.scan(text)
            record = decision_record(result.decision)
            record["event_seq"] = result.event.seq
            emit(record)
    return 0




def run_revoke(args: argparse.Namespace) -> int:
    expires = parse_instant(args.expires, "--expires") if args.expires else int(time.time()) + DEFAULT_REVOCATION_DAYS * 86400
    ids = [parse_ticket_id(text) for text in args.ticket_ids]
    with RevocationSet.open(args.state / "revocations") as revocations, GateStore.open(args.state) as store:
        revocations.revoke_local([(ticket_id, expires) for ticket_id in ids])
        for ticket_id in ids:
            store.record_event("local_revocation", int(time.time() * 1000), ticket_id, {"expires": expires})
    emit({"revoked": [ticket_id.hex() for ticket_id in ids], "expires": expires})
    return 0


def run_state(args: argparse.Namespace) -> int:
    if not (args.state / "state.sqlite3").exists():
        raise CommandError(f"{args.state}: no gate state here (expected state.sqlite3)")
    with RevocationSet.open(args.state / "revocations") as revocations, GateStore.open(args.state) as store:
        high_water = int(store.get_meta("clock_high_water", 0))
        emit({
            "state_dir": str(args.state),
            "revocations": {"entries": len(revocations), "sequence": revocations.sequence},
            "events": store.counts(),
            "hub_streams": store.stream_seqs(),
            "quota_leases": [
                {"day": day, "slot_start": start, "slot_end": end, "granted": granted, "used": used, "lease_id": lease, "expires_ms": expires}
                for day, start, end, granted, used, lease, expires in store.quota_leases()
            ],
            "clock": {"high_water": high_water, "wall": int(time.time()), "trusted": time.time() >= high_water - 300},
        })
    return 0
