"""``lungta keygen`` and ``lungta ticket issue|batch|inspect``: the issuer's side.

Only protocol/ (PyNaCl, cbor2) is imported to mint a ticket; the QR
renderer (segno) is imported when a PNG or a printed sheet is asked for,
so a sales script calling ``lungta ticket issue`` once per sale stays fast.
"""

from __future__ import annotations

import argparse
import sys
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.claims import MAX_LABEL, TicketType

from .arguments import TIME_HELP, add_timezone_option, parse_instant, timezone_of
from .errors import CommandError
from .output import emit

if TYPE_CHECKING:
    from protocol.claims import TicketClaims
    from protocol.holder import HolderBinding

DEFAULT_VALIDITY_SECONDS = 24 * 3600
TICKET_TYPES = ", ".join(t.label for t in TicketType)


def add_commands(commands: argparse._SubParsersAction) -> None:
    keygen = commands.add_parser("keygen", help="create an Ed25519 signing key pair (PEM)", description="Write DIR/NAME.key (PKCS#8, mode 0600) and DIR/NAME.pub (SubjectPublicKeyInfo), both created new.")
    keygen.add_argument("--kid", required=True, metavar="NAME", help="name of the key files; the kid itself is derived from the public key")
    keygen.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write the key pair into (created 0700 when missing)")
    keygen.set_defaults(run=run_keygen)

    ticket = commands.add_parser("ticket", help="mint, batch-print or inspect tickets").add_subparsers(dest="ticket_command", required=True, metavar="ACTION")
    issue = ticket.add_parser("issue", help="mint a signed ticket and print its QR text", description="Mint a ticket signed with KEY; prints the QR text on stdout (with --json: ticket id and text).")
    _claim_options(issue)
    issue.add_argument("--holder", metavar="ID", help="real-name ticket: holder's ID number (only a slow, secret-keyed binding is stored; docs/realname.md)")
    issue.add_argument("--holder-secret", type=Path, metavar="FILE", help="the site's real-name secret (`lungta ticket secret`); required with --holder")
    issue.add_argument("--holder-name", metavar="NAME", help=f"holder's name, masked to at most 4 characters before it is stored (扎西次仁 -> 扎**仁); at most {MAX_LABEL} characters")
    issue.add_argument("--png", type=Path, metavar="FILE", help="also write the QR code as a PNG image")
    issue.add_argument("--json", action="store_true", help="print one JSON object: ticket_id, text, kid")
    issue.set_defaults(run=run_issue)

    batch = ticket.add_parser(
        "batch",
        help="mint many tickets at once for the ticket office's backup stock",
        description="Mint COUNT tickets alike into DIR: tickets.csv (ticket_id,text, one line each), batch.json "
        "(what was minted, by which key, when, and a SHA-256 of tickets.csv, for the operator's records) and, "
        "unless --no-sheets, printable HTML sheets of QR codes (sheet-0001.html ...). DIR must be new or empty.",
    )
    _claim_options(batch)
    batch.add_argument("--count", required=True, type=int, metavar="N", help="how many tickets (1..1000000)")
    batch.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the batch (created)")
    batch.add_argument("--no-sheets", action="store_true", help="write only tickets.csv and batch.json (fastest; print later)")
    batch.set_defaults(run=run_batch)

    secret = ticket.add_parser("secret", help="create the site's real-name secret file", description="Write 32 random bytes as hex to FILE (mode 0600, never overwritten). Issuers and every gate that checks IDs need the same file.")
    secret.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to create")
    secret.set_defaults(run=run_secret)

    inspect = ticket.add_parser("inspect", help="decode a ticket and print its claims as JSON")
    inspect.add_argument("text", metavar="TEXT", help="ticket QR text (LT1:...)")
    inspect.add_argument("--trust", type=Path, metavar="PATH", help="trust store (trust.toml or a .pub) to check the signature")
    inspect.add_argument("--at", metavar="ISO8601", help=f"time to check key validity at (default: now; {TIME_HELP})")
    add_timezone_option(inspect)
    inspect.set_defaults(run=run_inspect)


def _claim_options(parser: argparse.ArgumentParser) -> None:
    """The claims ``issue`` and ``batch`` share."""
    parser.add_argument("--key", required=True, type=Path, metavar="FILE", help="issuer private key (PEM)")
    parser.add_argument("--site", required=True, help="site the ticket admits to")
    parser.add_argument("--valid-from", metavar="ISO8601", help=f"start of validity (default: now; {TIME_HELP})")
    parser.add_argument("--valid-until", metavar="ISO8601", help=f"end of validity (default: 24 h after the start; {TIME_HELP})")
    add_timezone_option(parser)
    parser.add_argument("--type", default="adult", help=f"ticket type: {TICKET_TYPES} (default adult)")
    parser.add_argument("--persons", type=int, default=1, metavar="N", help="people admitted per entry (group size, default 1)")
    parser.add_argument("--entries", type=int, default=1, metavar="N", help="entries allowed in total; 0 = unlimited (default 1)")
    parser.add_argument("--entries-per-day", type=int, metavar="N", help="entries allowed per day, for multi-day passes")
    parser.add_argument("--slot", metavar="HH:MM-HH:MM", help="entry time slot, site local time")
    parser.add_argument("--zone", action="append", default=[], metavar="ZONE", help="zone the ticket admits to (repeatable; none = all zones)")
    parser.add_argument("--issuer", metavar="ISS", help="iss claim (optional; the kid already names the key)")
    parser.add_argument("--reentry", action="store_true", help="an exit re-arms the ticket for another entry")


def run_keygen(args: argparse.Namespace) -> None:
    from protocol.keys import generate_signing_key, kid_for, write_key_pair

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", args.kid):
        raise CommandError(f"--kid: {args.kid!r} must be 1-64 letters, digits, '.', '_' or '-'")
    key = generate_signing_key()
    private_path, public_path = write_key_pair(key, args.out, args.kid)
    emit({"private_key": str(private_path), "public_key": str(public_path), "kid": kid_for(key.verify_key).hex()})


def mask_name(name: str) -> str:
    """Keep the first and last character: enough for staff to match a face, little to leak.

    At most two stars, so the masked name is at most 4 characters whatever the name: a
    long name (Tibetan script, a foreigner's full name) neither shows its length nor
    pushes a real-name ticket past QR version 10-M (docs/protocol.md, section 2)."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * min(len(name) - 2, 2) + name[-1]


def _label(value: str, option: str) -> str:
    """A text claim as every gate accepts it (protocol/claims.py): 1..64 characters."""
    if not 1 <= len(value) <= MAX_LABEL:
        raise CommandError(f"{option}: {value!r} must be 1..{MAX_LABEL} characters (a gate refuses anything else as malformed)")
    return value


def claims_template(args: argparse.Namespace, now: int) -> TicketClaims:
    """Every claim except the ticket id (all zero here) and holder, checked as a gate would check it."""
    from protocol.claims import TicketClaims, TimeSlot

    zone = timezone_of(args)
    start = parse_instant(args.valid_from, "--valid-from", zone) if args.valid_from else now
    end = parse_instant(args.valid_until, "--valid-until", zone) if args.valid_until else start + DEFAULT_VALIDITY_SECONDS
    if end <= start:
        raise CommandError("--valid-until must be after --valid-from")
    try:
        ticket_type = TicketType.from_label(args.type)
        slot = TimeSlot.parse(args.slot) if args.slot else None
    except ValueError as error:
        raise CommandError(f"--type/--slot: {error}") from None
    if not 1 <= args.persons <= 999 or not 0 <= args.entries <= 65535:
        raise CommandError("--persons must be 1..999 and --entries 0..65535")
    if args.entries_per_day is not None and not 1 <= args.entries_per_day <= 65535:
        raise CommandError("--entries-per-day must be 1..65535")
    return TicketClaims(
        ticket_id=bytes(12),
        site=_label(args.site, "--site"),
        not_before=start,
        expires=end,
        issued_at=now,
        issuer=_label(args.issuer, "--issuer") if args.issuer else None,
        zones=tuple(_label(zone_name, "--zone") for zone_name in args.zone),
        ticket_type=ticket_type,
        persons=args.persons,
        entries=args.entries,
        entries_per_day=args.entries_per_day,
        slot=slot,
        reentry=args.reentry,
    )


def run_issue(args: argparse.Namespace) -> None:
    from protocol.errors import TicketError
    from protocol.keys import kid_for, load_signing_key
    from protocol.ticket import issue_ticket, new_ticket_id, read_ticket

    key = load_signing_key(args.key)
    template = claims_template(args, int(time.time()))
    holder_name = mask_name(_label(args.holder_name, "--holder-name")) if args.holder_name else None
    ticket_id = new_ticket_id()
    holder_binding = _holder_binding(args, ticket_id)
    text = issue_ticket(replace(template, ticket_id=ticket_id, holder_binding=holder_binding, holder_name=holder_name), key)
    try:
        read_ticket(text)  # the gate's own parser: what it would refuse is never handed out
    except TicketError as error:
        raise CommandError(f"the ticket would be refused at a gate: {error}") from None
    _warn_if_real_name_ticket_is_large(text, holder_binding is not None)
    if args.png:
        write_png(text, args.png)
    if args.json:
        emit({"ticket_id": ticket_id.hex(), "text": text, "kid": kid_for(key.verify_key).hex()})
    else:
        print(text)


REAL_NAME_QR_VERSION = 10  # real-name tickets are meant to fit 10-M (docs/protocol.md, section 2)


def _warn_if_real_name_ticket_is_large(text: str, real_name: bool) -> None:
    """A real-name ticket past 10-M still works at a gate, but is a denser code than phones
    and cheap scanners read well; say so (stderr), with what to leave out."""
    from protocol.qr import ticket_qr

    version = ticket_qr(text).version
    if real_name and isinstance(version, int) and version > REAL_NAME_QR_VERSION:
        sys.stderr.write(f"lungta: warning: this real-name ticket is {len(text)} characters, QR version {version}-M; "
                         f"real-name tickets are meant to fit {REAL_NAME_QR_VERSION}-M: leave out --issuer (the kid names the key)\n")


def write_png(text: str, path: Path) -> None:
    """The QR as PNG at ``path``; a missing folder or a folder in the way is one line."""
    from protocol.qr import write_ticket_png

    if path.is_dir():
        raise CommandError(f"--png {path}: is a directory; give a file name, e.g. {path / 'ticket.png'}")
    if not path.parent.is_dir():
        raise CommandError(f"--png {path}: folder {path.parent} does not exist")
    try:
        write_ticket_png(text, path)
    except OSError as exc:
        raise CommandError(f"--png {path}: cannot write: {exc.strerror}") from None


def run_batch(args: argparse.Namespace) -> None:
    from .batch import mint_batch

    if not 1 <= args.count <= 1_000_000:
        raise CommandError("--count must be 1..1000000")
    from protocol.keys import load_signing_key

    key = load_signing_key(args.key)
    record = mint_batch(key, claims_template(args, int(time.time())), args.count, args.out, sheets=not args.no_sheets)
    emit(record)


def _holder_binding(args: argparse.Namespace, ticket_id: bytes) -> "HolderBinding | None":
    from protocol.holder import HolderIdError, SiteSecretError, bind_holder, read_site_secret

    if args.holder is None:
        return None
    if args.holder_secret is None:
        raise CommandError("--holder needs --holder-secret FILE (create one with `lungta ticket secret --out FILE`)")
    try:
        return bind_holder(ticket_id, args.holder, read_site_secret(args.holder_secret))
    except (HolderIdError, SiteSecretError) as error:
        raise CommandError(f"--holder: {error}") from None


def run_secret(args: argparse.Namespace) -> None:
    from protocol.holder import generate_site_secret, write_site_secret

    try:
        write_site_secret(args.out, generate_site_secret())
    except FileExistsError:
        raise CommandError(f"--out: {args.out} exists; a site secret is never overwritten (tickets already minted need it)") from None
    except OSError as error:
        raise CommandError(f"--out: cannot write {args.out}: {error.strerror}") from None
    emit({"secret_file": str(args.out)})


def run_inspect(args: argparse.Namespace) -> int:
    from protocol.claims import describe_claims
    from protocol.errors import TicketError
    from protocol.ticket import read_ticket
    from protocol.trust import load_trust_store

    try:
        ticket = read_ticket(args.text)
    except TicketError as error:
        emit({"valid": False, "reason": error.reason, "detail": str(error)})
        return 1
    record = {"ticket_id": ticket.claims.ticket_id_hex, "kid": ticket.kid.hex(), "claims": describe_claims(ticket.claims)}
    signature: dict[str, str]
    if args.trust:
        trust = load_trust_store(args.trust)
        at = parse_instant(args.at, "--at", timezone_of(args)) if args.at else int(time.time())
        try:
            key = trust.key_for(ticket.kid, at)
            ticket.sign1.verify(key.verify_key)
            signature = {"verdict": "valid", "key": key.name}
        except TicketError as error:
            signature = {"verdict": error.reason, "detail": str(error)}
    else:
        signature = {"verdict": "unchecked", "detail": "no --trust given"}
    emit({**record, "signature": signature})
    return 0 if signature["verdict"] in ("valid", "unchecked") else 1
