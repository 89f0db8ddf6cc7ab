"""``lungta gate ...``: validating tickets at a gate, from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gate.decision import Decision
from gate.engine import SiteRules, decide
from protocol.claims import describe_claims
from protocol.trust import load_trust_store

from .output import emit
from .timeparse import parse_instant


def add_commands(commands: argparse._SubParsersAction) -> None:
    gate = commands.add_parser("gate", help="validate tickets and run a gate").add_subparsers(dest="gate_command", required=True, metavar="ACTION")
    validate = gate.add_parser(
        "validate",
        help="decide on ticket texts offline, one JSON line each",
        description="Decide on each TEXT (or each line of stdin) as a gate would; prints one JSON object per ticket.",
    )
    validate.add_argument("--trust", required=True, type=Path, metavar="PATH", help="trust store (trust.toml or a .pub)")
    validate.add_argument("--site", required=True, help="the site this gate belongs to")
    validate.add_argument("--zone", action="append", default=[], metavar="ZONE", help="zone this gate admits to (repeatable)")
    validate.add_argument("--state", type=Path, metavar="DIR", help="gate state directory (revocations, used tickets, outbox)")
    validate.add_argument("--at", metavar="ISO8601", help="decide as if at this time (default: now)")
    validate.add_argument("texts", nargs="*", metavar="TEXT", help="ticket QR texts; read from stdin when none are given")
    validate.set_defaults(run=run_validate)


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
        "ticket": describe_claims(decision.ticket) if decision.ticket else None,
    }


def run_validate(args: argparse.Namespace) -> int:
    trust = load_trust_store(args.trust)
    rules = SiteRules(site=args.site, zones=tuple(args.zone))
    fixed_time = parse_instant(args.at, "--at") if args.at else None
    for text in _texts(args):
        emit(decision_record(decide(text, fixed_time if fixed_time is not None else int(time.time()), rules, trust)))
    return 0
