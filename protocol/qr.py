"""QR rendering of ticket text, at error correction M as the format specifies.

The ticket alphabet is base45's, a subset of QR alphanumeric mode, so segno
picks alphanumeric encoding and the smallest version that fits.
"""

from __future__ import annotations

from pathlib import Path

import segno

ERROR_CORRECTION = "m"


def ticket_qr(text: str) -> segno.QRCode:
    return segno.make_qr(text, error=ERROR_CORRECTION, boost_error=False)


def write_ticket_png(text: str, path: Path, scale: int = 6) -> int:
    """Write the QR as a PNG with a 4-module quiet zone; returns the QR version."""
    code = ticket_qr(text)
    code.save(str(path), scale=scale, border=4)
    return int(code.version)  # a full QR code's version is a number (a Micro QR's would be 'M1'..'M4')
