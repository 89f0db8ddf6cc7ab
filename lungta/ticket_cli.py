"""``lungta keygen`` and ``lungta ticket issue|inspect``: the issuer's side."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from protocol.claims import TicketClaims, TicketType, TimeSlot, describe_claims
from protocol.holder import HolderBinding, HolderIdError, SiteSecretError, bind_holder, generate_site_secret, read_site_secret, write_site_secret
from protocol.errors import TicketError
from protocol.keys import generate_signing_key, kid_for, load_signing_key, write_key_pair
from protocol.qr import write_ticket_png
from protocol.ticket import issue_ticket, new_ticket_id, read_ticket
from protocol.trust import load_trust_store

from .errors import CommandError
from .output import emit
from .arguments import parse_instant

DEFAULT_VALIDITY_SECONDS = 24 * 3600


def add_commands(commands: argparse._SubParsersAction) -> None:
    keygen = commands.add_parser("keygen", help="create an Ed25519 signing key pair (PEM)", description="Write DIR/NAME.key (PKCS#8, mode 0600) and DIR/NAME.pub (SubjectPublicKeyInfo).")
    keygen.add_argument("--kid", required=True, metavar="NAME", help="name of the key files; the kid itself is derived from the public key")
    keygen.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write the key pair into")
    keygen.set_defaults(run=run_keygen)

    ticket = commands.add_parser("ticket", help="mint or inspect tickets").add_subparsers(dest="ticket_command", required=True, metavar="ACTION")
    issue = ticket.add_parser("issue", help="mint a signed ticket and print its QR text", description="Mint a ticket signed with KEY; prints the QR text on stdout.")
    issue.add_argument("--key", required=True, type=Path, metavar="FILE", help="issuer private key (PEM)")
    issue.add_argument("--site", required=True, help="site the ticket admits to")
    issue.add_argument("--valid-from", metavar="ISO8601", help="start of validity (default: now)")
    issue.add_argument("--valid-until", metavar="ISO8601", help="end of validity (default: 24 h after the start)")
    issue.add_argument("--type", default="adult", help=f"ticket type: {', '.join(t.label for t in TicketType)} (default adult)")
    issue.add_argument("--persons", type=int, default=1, metavar="N", help="people admitted per entry (group size, default 1)")
    issue.add_argument("--entries", type=int, default=1, metavar="N", help="entries allowed in total; 0 = unlimited (default 1)")
    issue.add_argument("--entries-per-day", type=int, metavar="N", help="entries allowed per day, for multi-day passes")
    issue.add_argument("--slot", metavar="HH:MM-HH:MM", help="entry time slot, site local time")
    issue.add_argument("--zone", action="append", default=[], metavar="ZONE", help="zone the ticket admits to (repeatable; none = all zones)")
    issue.add_argument("--holder", metavar="ID", help="real-name ticket: holder's ID number (only a slow, secret-keyed binding is stored; docs/realname.md)")
    issue.add_argument("--holder-secret", type=Path, metavar="FILE", help="the site's real-name secret (`lungta ticket secret`); required with --holder")
    issue.add_argument("--holder-name", metavar="NAME", help="holder's name, masked before it is stored (e.g. 扎*次仁)")
    issue.add_argument("--issuer", metavar="ISS", help="iss claim (optional; the kid already names the key)")
    issue.add_argument("--reentry", action="store_true", help="an exit re-arms the ticket for another entry")
    issue.add_argument("--png", type=Path, metavar="FILE", help="also write the QR code as a PNG image")
    issue.set_defaults(run=run_issue)

    secret = ticket.add_parser("secret", help="create the site's real-name secret file", description="Write 32 random bytes as hex to FILE (mode 0600, never overwritten). Issuers and every gate that checks IDs need the same file.")
    secret.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to create")
    secret.set_defaults(run=run_secret)

    inspect = ticket.add_parser("inspect", help="decode a ticket and print its claims as JSON")
    inspect.add_argument("text", metavar="TEXT", help="ticket QR text (LT1:...)")
    inspect.add_argument("--trust", type=Path, metavar="PATH", help="trust store (trust.toml or a .pub) to check the signature")
    inspect.add_argument("--at", metavar="ISO8601", help="time to check key validity at (default: now)")
    inspect.set_defaults(run=run_inspect)


def run_keygen(args: argparse.Namespace) -> None:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", args.kid):
        raise CommandError(f"--kid: {args.kid!r} must be 1-64 letters, digits, '.', '_' or '-'")
    key = generate_signing_key()
    private_path, public_path = write_key_pair(key, args.out, args.kid)
    emit({"private_key": str(private_path), "public_key": str(public_path), "kid": kid_for(key.verify_key).hex()})


def mask_name(name: str) -> str:
    """Keep the first and last character: enough for staff to match a face, little to leak."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def run_issue(args: argparse.Namespace) -> None:
    key = load_signing_key(args.key)
    now = int(time.time())
    start = parse_instant(args.valid_from, "--valid-from") if args.valid_from else now
    end = parse_instant(args.valid_until, "--valid-until") if args.valid_until else start + DEFAULT_VALIDITY_SECONDS
    if end <= start:
        raise CommandError("--valid-until must be after --valid-from")
    try:
        ticket_type = TicketType.from_label(args.type)
        slot = TimeSlot.parse(args.slot) if args.slot else None
    except ValueError as error:
        raise CommandError(f"--type/--slot: {error}") from None
    if not 1 <= args.persons <= 999 or not 0 <= args.entries <= 65535:
        raise CommandError("--persons must be 1..999 and --entries 0..65535")
    ticket_id = new_ticket_id()
    binding = _holder_binding(args, ticket_id)
    claims = TicketClaims(
        ticket_id=ticket_id,
        site=args.site,
        not_before=start,
        expires=end,
        issued_at=now,
        issuer=args.issuer,
        zones=tuple(args.zone),
        ticket_type=ticket_type,
        persons=args.persons,
        entries=args.entries,
        entries_per_day=args.entries_per_day,
        slot=slot,
        holder_name=mask_name(args.holder_name) if args.holder_name else None,
        reentry=args.reentry,
        holder_binding=binding,
    )
    text = issue_ticket(claims, key)
    if args.png:
        write_ticket_png(text, args.png)
    print(text)


def _holder_binding(args: argparse.Namespace, ticket_id: bytes) -> HolderBinding | None:
    if args.holder is None:
        return None
    if args.holder_secret is None:
        raise CommandError("--holder needs --holder-secret FILE (create one with `lungta ticket secret --out FILE`)")
    try:
        return bind_holder(ticket_id, args.holder, read_site_secret(args.holder_secret))
    except (HolderIdError, SiteSecretError) as error:
        raise CommandError(f"--holder: {error}") from None


def run_secret(args: argparse.Namespace) -> None:
    try:
        write_site_secret(args.out, generate_site_secret())
    except FileExistsError:
        raise CommandError(f"--out: {args.out} exists; a site secret is never overwritten (tickets already minted need it)") from None
    except OSError as error:
        raise CommandError(f"--out: cannot write {args.out}: {error.strerror}") from None
    emit({"secret_file": str(args.out)})


def run_inspect(args: argparse.Namespace) -> int:
    try:
        ticket = read_ticket(args.text)
    except TicketError as error:
        emit({"valid": False, "reason": error.reason, "detail": str(error)})
        return 1
    record = {"ticket_id": ticket.claims.ticket_id_hex, "kid": ticket.kid.hex(), "claims": describe_claims(ticket.claims)}
    if args.trust:
        trust = load_trust_store(args.trust)
        at = parse_instant(args.at, "--at") if args.at else int(time.time())
        try:
            key = trust.key_for(ticket.kid, at)
            ticket.sign1.verify(key.verify_key)
            record["signature"] = {"verdict": "valid", "key": key.name}
        except TicketError as error:
            record["signature"] = {"verdict": error.reason, "detail": str(error)}
    else:
        record["signature"] = {"verdict": "unchecked", "detail": "no --trust given"}
    emit(record)
    return 0 if record["signature"]["verdict"] in ("valid", "unchecked") else 1
