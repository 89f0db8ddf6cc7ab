"""A batch of backup tickets for the ticket office: minted fast, recorded, printable.

When the sales system is down the ticket office hands out tickets from
stock printed in advance. A batch is one folder:

- ``tickets.csv``: ``ticket_id,text`` per ticket, the record to revoke from
  (``lungta hub revoke`` takes those ids) or to reconcile against;
- ``batch.json``: what was minted (claims, count), with which key (kid),
  when, and the SHA-256 of tickets.csv, so the operator can tell a batch
  apart from a copy someone altered;
- ``sheet-0001.html`` ...: A4 pages of QR codes with id, type and validity
  under each, to print from any browser (no extra software on the office PC).

Minting is signing only (thousands per second); rendering QR codes is the
slow part and can be skipped (``--no-sheets``) and done later.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from nacl.signing import SigningKey

from protocol.claims import TicketClaims, describe_claims
from protocol.keys import kid_for
from protocol.ticket import issue_ticket, new_ticket_id

from .errors import CommandError

PER_SHEET = 100
PER_ROW = 4
CSV_NAME, RECORD_NAME = "tickets.csv", "batch.json"


def _batch_folder(out: Path) -> None:
    """A new or empty folder: a batch never mixes with or overwrites another."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out {out}: cannot create: {exc.strerror}") from None
    if any(out.iterdir()):
        raise CommandError(f"--out {out}: not empty; each batch goes into a folder of its own")
    if not os.access(out, os.W_OK | os.X_OK):
        raise CommandError(f"--out {out}: not writable")


def mint_batch(key: SigningKey, template: TicketClaims, count: int, out: Path, sheets: bool = True) -> dict[str, object]:
    """Mint ``count`` tickets like ``template`` (each with an id of its own) into ``out``; returns the batch record (also written as batch.json)."""
    _batch_folder(out)
    started = time.perf_counter()
    tickets: list[tuple[str, str]] = []
    for _ in range(count):
        ticket_id = new_ticket_id()
        tickets.append((ticket_id.hex(), issue_ticket(replace(template, ticket_id=ticket_id), key)))
    csv_path = out / CSV_NAME
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ticket_id", "text"])
        writer.writerows(tickets)
    minted_seconds = time.perf_counter() - started
    example = describe_claims(replace(template, ticket_id=bytes(12)))
    example.pop("ticket_id", None)
    sheet_files = write_sheets(tickets, example, out) if sheets else []
    record = {
        "batch": out.name,
        "count": count,
        "kid": kid_for(key.verify_key).hex(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "claims": example,
        "tickets_csv": CSV_NAME,
        "tickets_csv_sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest(),
        "first_ticket_id": tickets[0][0],
        "last_ticket_id": tickets[-1][0],
        "sheets": sheet_files,
        "mint_seconds": round(minted_seconds, 3),
    }
    (out / RECORD_NAME).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return record


def write_sheets(tickets: list[tuple[str, str]], claims: dict[str, object], out: Path) -> list[str]:
    """One HTML page per PER_SHEET tickets, each code as inline SVG with its id and validity under it.

    Encoding QR codes is the slow part (pure Python), so pages are rendered
    in parallel, one process per core; each page is one file, written whole.
    """
    from concurrent.futures import ProcessPoolExecutor

    caption = html.escape(f"{claims.get('type')} · {claims.get('persons')} pers. · {claims.get('valid_from')} → {claims.get('valid_until')}")
    pages = [(out / f"sheet-{number:04d}.html", tickets[first : first + PER_SHEET], caption)
             for number, first in enumerate(range(0, len(tickets), PER_SHEET), start=1)]
    if len(pages) == 1:
        _write_sheet(pages[0])
    else:
        with ProcessPoolExecutor(max_workers=min(len(pages), os.cpu_count() or 1)) as pool:
            list(pool.map(_write_sheet, pages))
    return [path.name for path, _, _ in pages]


def _write_sheet(page: tuple[Path, list[tuple[str, str]], str]) -> None:
    from protocol.qr import ticket_qr

    path, tickets, caption = page
    cells = [f'<figure>{ticket_qr(text).svg_inline(scale=3, border=4)}<figcaption><b>{ticket_id}</b><br>{caption}</figcaption></figure>'
             for ticket_id, text in tickets]
    path.write_text(_SHEET.format(title=html.escape(f"{path.parent.name} {path.name}"), cells="\n".join(cells), columns=PER_ROW), encoding="utf-8")


_SHEET = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
@page {{ size: A4; margin: 10mm; }}
body {{ font: 9pt sans-serif; margin: 0; }}
main {{ display: grid; grid-template-columns: repeat({columns}, 1fr); gap: 4mm; }}
figure {{ margin: 0; text-align: center; break-inside: avoid; border: 1px dashed #999; padding: 2mm; }}
figure svg {{ width: 40mm; height: 40mm; }}
figcaption {{ word-break: break-all; }}
</style></head>
<body><main>
{cells}
</main></body></html>
"""
