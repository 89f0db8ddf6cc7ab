"""``lungta gate ...``: validating tickets at a gate, inspecting, testing and running it.

Handheld validators used offline run exactly these commands on their own
state directory, so what they decide and record is what a gate would.
The gate's parts are imported inside each command, so ``lungta gate
validate`` never loads the camera, MQTT or turnstile code.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import TIME_HELP, add_timezone_option, parse_instant, parse_ticket_id, timezone_of
from .errors import CommandError
from .output import emit
from .paths import check_writable_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from gate.decision import Decision
    from gate.realname.policy import RealNamePolicy
    from gate.validator import ScanResult, Validator

DEFAULT_REVOCATION_DAYS = 400


def add_commands(commands: argparse._SubParsersAction) -> None:
    gate = commands.add_parser("gate", help="validate tickets, inspect, test and run a gate").add_subparsers(dest="gate_command", required=True, metavar="ACTION")
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
    validate.add_argument("--at", metavar="ISO8601", help=f"decide as if at this time (default: now, from the gate's trusted clock; {TIME_HELP})")
    add_timezone_option(validate)
    realname = validate.add_argument_group("real-name tickets (as [realname] in gate.toml; docs/realname.md)")
    realname.add_argument("--realname-check", choices=("off", "required", "types"), default="off",
                          help="which real-name tickets need the holder's ID: off (default), required (all), types (--realname-type)")
    realname.add_argument("--realname-type", action="append", default=[], metavar="TYPE", help="with --realname-check types: a ticket type that needs it (repeatable)")
    realname.add_argument("--realname-legacy", choices=("check", "deny", "admit"), default="check", help="old-format real-name tickets (default check)")
    realname.add_argument("--holder-secret", type=Path, metavar="FILE", help="the site's real-name secret (`lungta ticket secret`); required to check IDs")
    realname.add_argument("--retired-holder-secret", type=Path, action="append", default=[], metavar="FILE",
                          help="an earlier site secret, for tickets minted before it was rotated (repeatable)")
    realname.add_argument("--id-terminal", default="/dev/tty", metavar="TTY",
                          help="terminal the operator types the holder's ID on, not echoed (default /dev/tty: never on the command line or stdin)")
    validate.add_argument("texts", nargs="*", metavar="TEXT", help="ticket QR texts; read from stdin when none are given")
    validate.set_defaults(run=run_validate)

    revoke = gate.add_parser("revoke", help="revoke tickets in a gate's local state", description="Add ticket ids (hex, as 'lungta ticket inspect' prints them) to the local revocation set.")
    revoke.add_argument("--state", required=True, type=Path, metavar="DIR", help="gate state directory")
    revoke.add_argument("--expires", metavar="ISO8601", help=f"when the entries may be dropped (default: {DEFAULT_REVOCATION_DAYS} days from now; {TIME_HELP})")
    add_timezone_option(revoke)
    revoke.add_argument("ticket_ids", nargs="+", metavar="TICKET_ID")
    revoke.set_defaults(run=run_revoke)

    state = gate.add_parser(
        "state",
        help="print a gate's local state as JSON (counts, sequences, backlog, clock)",
        description="Read-only: safe beside a running gate (the revocation set, held by the running daemon, is then reported as such).",
    )
    state.add_argument("--state", required=True, type=Path, metavar="DIR", help="gate state directory")
    state.add_argument("--site-root", type=Path, metavar="PUB", help="the site root's public key (gate.toml [gate] site_root): check the installed trust list and show its version and keys")
    state.set_defaults(run=run_state)

    run = gate.add_parser("run", help="run the gate daemon (scanner -> decision -> turnstile)", description="Run the gate daemon until SIGTERM; systemd Type=notify aware.")
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="gate.toml")
    run.add_argument("--check", action="store_true", help="only check the config and the files it names, print one line and exit (0: good, 2: the problem)")
    run.set_defaults(run=run_gate, default_log_level="INFO")

    from . import gate_test_cli

    gate_test_cli.add_command(gate)


def run_gate(args: argparse.Namespace) -> int:
    """``gate run``: check what a user can get wrong first (one line each), then hand over to lungta/gate_run.py."""
    from .checks import check_gate_config

    summary = check_gate_config(args.config)
    if args.check:
        emit({"config": str(args.config), "ok": True, **summary})
        return 0
    from . import gate_run

    return gate_run.run_gate(args)


def _texts(args: argparse.Namespace) -> Iterator[str]:
    if args.texts:
        yield from args.texts
        return
    for line in sys.stdin:
        if line.strip():
            yield line.strip()


def decision_record(decision: "Decision") -> dict[str, object]:
    from protocol.claims import describe_claims

    return {
        "decision": "grant" if decision.granted else "deny",
        "reason": decision.reason.value,
        "detail": decision.detail,
        "persons": decision.persons,
        "flagged": decision.flagged,
        "ticket": describe_claims(decision.ticket) if decision.ticket else None,
    }


def _name(value: str, option: str) -> str:
    from protocol.topics import TopicError, check_name

    try:
        return check_name(value, option)
    except TopicError as error:
        raise CommandError(str(error)) from None


def _open(args: argparse.Namespace, stack: ExitStack) -> "Validator":
    import tempfile

    from gate.clock import GateClock
    from gate.hublink import HubLinkState
    from gate.rules import GateRules
    from gate.validator import open_validator
    from protocol.trust import load_trust_store

    if args.state:
        check_writable_dir(args.state, "--state")
    state_dir = args.state if args.state else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lungta-validate-")))
    zone = timezone_of(args)
    rules = GateRules(site=_name(args.site, "--site"), gate_id=_name(args.gate_id, "--gate-id"), zone=args.zone, timezone=zone, realname=_realname_policy(args))
    clock = None
    if args.at:
        pinned = float(parse_instant(args.at, "--at", zone))
        clock = GateClock(high_water=0, wall=lambda: pinned, monotonic=lambda: 0.0)
    trust = load_trust_store(args.trust)
    online = HubLinkState(online=True)  # a handheld's operator answers for offline use; no hub policy applies here
    validator = open_validator(state_dir, rules, trust, clock=clock, hub=online)
    stack.callback(validator.close)
    return validator


def _realname_policy(args: argparse.Namespace) -> "RealNamePolicy":
    """--realname-check / --realname-type / --realname-legacy as the gate's [realname] policy."""
    from gate.realname.policy import HolderCheck, LegacyPolicy, RealNamePolicy
    from protocol.claims import TicketType

    check = HolderCheck(args.realname_check)
    try:
        types = frozenset(TicketType.from_label(label) for label in args.realname_type)
    except ValueError as error:
        raise CommandError(f"--realname-type: {error}") from None
    if check is HolderCheck.TYPES and not types:
        raise CommandError("--realname-check types needs at least one --realname-type")
    if check is not HolderCheck.TYPES and types:
        raise CommandError("--realname-type is used only with --realname-check types")
    return RealNamePolicy(check, types, LegacyPolicy(args.realname_legacy))


def _typed_id_check(args: argparse.Namespace, stack: ExitStack) -> "Callable[[Validator, str, ScanResult], ScanResult] | None":
    """The ID check on the terminal when real-name tickets are checked; None when they are not."""
    if args.realname_check == "off":
        return None
    from gate.realname.terminal import TerminalIdPrompt, TerminalUnavailable, complete_with_typed_id
    from protocol.holder import SiteSecretError, read_site_secret

    if args.holder_secret is None:
        raise CommandError("--realname-check needs --holder-secret FILE (the site's real-name secret)")
    try:
        secret = read_site_secret(args.holder_secret)
        retired = tuple(read_site_secret(path) for path in args.retired_holder_secret)
        prompt = TerminalIdPrompt(args.id_terminal)
    except (SiteSecretError, TerminalUnavailable) as error:
        raise CommandError(str(error)) from None
    stack.callback(prompt.close)
    return lambda validator, text, first: complete_with_typed_id(validator, text, first, prompt.ask, prompt.say, secret, retired)


def run_validate(args: argparse.Namespace) -> int:
    from gate.decision import Reason

    with ExitStack() as stack:
        validator = _open(args, stack)
        id_check = _typed_id_check(args, stack)
        for text in _texts(args):
            result = validator.scan(text)
            if id_check is not None and result.decision.reason is Reason.HOLDER_CHECK_REQUIRED:
                result = id_check(validator, text, result)
            record = decision_record(result.decision)
            record["event_seq"] = result.event.seq if result.event else None  # None: nothing could be recorded (storage_error)
            emit(record)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from gate.cache.revocations import RevocationSet
    from gate.cache.state import GateStore
    from protocol.gate_messages import EventKind

    expires = parse_instant(args.expires, "--expires", timezone_of(args)) if args.expires else int(time.time()) + DEFAULT_REVOCATION_DAYS * 86400
    ids = [parse_ticket_id(text) for text in args.ticket_ids]
    check_writable_dir(args.state, "--state")
    with RevocationSet.open(args.state / "revocations") as revocations, GateStore.open(args.state) as store:
        revocations.revoke_local([(ticket_id, expires) for ticket_id in ids])
        for ticket_id in ids:
            store.record_event(EventKind.LOCAL_REVOCATION, int(time.time() * 1000), ticket_id, {"expires": expires})
    emit({"revoked": [ticket_id.hex() for ticket_id in ids], "expires": expires})
    return 0


def _revocations_summary(directory: Path) -> dict[str, object]:
    """Count and sequence of the revocation set, or why they cannot be read now."""
    from gate.cache.revocation_files import StoreLocked
    from gate.cache.revocations import RevocationSet

    if not directory.is_dir():
        return {"entries": 0, "sequence": 0}
    try:
        with RevocationSet.open(directory, auto_compact=False) as revocations:
            return {"entries": len(revocations), "sequence": revocations.sequence}
    except StoreLocked:
        return {"held_by_running_gate": True}


def run_state(args: argparse.Namespace) -> int:
    from gate.cache.state import GateStore
    from gate.clock import JUMP_THRESHOLD_SECONDS

    if args.state.exists() and not args.state.is_dir():
        raise CommandError(f"--state: {args.state} is a file, not a directory")
    with GateStore.open_read_only(args.state) as store:
        high_water = store.get_count("clock_high_water", 0)
        record: dict[str, object] = {
            "state_dir": str(args.state),
            "events": store.counts(),
            "hub_streams": store.stream_seqs(),
            "quota_leases": [
                {"day": lease.day, "slot_start": lease.slot_start, "slot_end": lease.slot_end, "granted": lease.granted, "used": lease.used,
                 "lease_id": lease.lease_id, "expires_ms": lease.expires_ms}
                for lease in store.quota_leases()
            ],
            "clock": {"high_water": high_water, "wall": int(time.time()), "trusted": time.time() >= high_water - JUMP_THRESHOLD_SECONDS,
                      "threshold_seconds": JUMP_THRESHOLD_SECONDS},  # the default: this command reads no gate.toml
        }
    record["trust_list"] = _trust_list_summary(args.state, args.site_root)
    emit({"state_dir": record.pop("state_dir"), "revocations": _revocations_summary(args.state / "revocations"), **record})
    return 0


def _trust_list_summary(state_dir: Path, site_root: Path | None) -> dict | None:
    """The trust list the gate installed from the hub (gate/trustlist.py); its contents only once checked against the root."""
    from gate.trustlist import FILENAME, read_saved
    from protocol.keys import load_verify_key
    from protocol.trustlist import TrustListError, describe, open_trust_list

    path = state_dir / FILENAME
    data = read_saved(path)
    if data is None:
        return None  # the gate trusts the issuer keys of its local trust file
    if site_root is None:
        return {"file": str(path), "verified": False, "hint": "pass --site-root with the site root's public key to check it and show its version"}
    try:
        return {"file": str(path), "verified": True, **describe(open_trust_list(data, load_verify_key(site_root)))}
    except TrustListError as error:
        return {"file": str(path), "verified": False, "refused": error.reason}
