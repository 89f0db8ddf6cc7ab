"""QR decoders behind one call: grayscale image in, decoded texts out.

zxing-cpp is the default (see docs/scanners.md for the measured figures);
pyzbar stays for boards where zxing-cpp has no wheel (32-bit ARM). Each
library is imported only when its decoder is made, so a board without one
of them still runs with the other.

Texts are returned exactly as the library produced them: no stripping or
normalising, because the ticket signature is checked over what the code
carries and a "cleaned" text would just fail later with a worse reason.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from .errors import DecoderUnavailable, SettingsError

log = logging.getLogger(__name__)


class Decoder(Protocol):
    name: str

    def decode(self, gray: np.ndarray) -> list[str]:
        """All QR codes found in an 8-bit grayscale image (any strides), dark or light mode."""
        ...


class ZxingDecoder:
    """zxing-cpp restricted to QR codes.

    try_invert reads dark-mode (light on dark) codes in the same call;
    try_rotate only matters for linear barcodes, so it is off; the
    downscaled pyramid is off by default because it costs about 20% on every
    frame, empty ones included, without reading one more code of the corpus
    or of the synthetic gate frames (bench/bench_decode.py). TextMode.Plain
    keeps the text as the symbol carries it (HRI would bracket GS1 fields).
    """

    name = "zxing"

    def __init__(self, try_downscale: bool = False) -> None:
        try:
            import zxingcpp
        except ImportError as error:
            raise DecoderUnavailable(f"decoder 'zxing' needs the zxing-cpp package: {error}") from error
        self._read: Any = zxingcpp.read_barcodes
        self._options = dict(
            formats=zxingcpp.BarcodeFormat.QRCode,
            try_rotate=False,
            try_downscale=try_downscale,
            try_invert=True,
            text_mode=zxingcpp.TextMode.Plain,
        )

    def decode(self, gray: np.ndarray) -> list[str]:
        return [barcode.text for barcode in self._read(gray, **self._options)]


class PyzbarDecoder:
    """zbar through pyzbar, for boards without zxing-cpp.

    zbar only reads dark-on-light codes, so a frame with no code is tried
    once more inverted: dark-mode phones work, at twice the cost of an empty
    frame. zbar hands back bytes it has already transcoded to UTF-8.
    """

    name = "pyzbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar
        except ImportError as error:  # also raised when libzbar0 is missing
            raise DecoderUnavailable(f"decoder 'pyzbar' needs pyzbar and the libzbar0 system library: {error}") from error
        self._decode: Any = pyzbar.decode
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, gray: np.ndarray) -> list[str]:
        image = np.ascontiguousarray(gray)  # zbar wants one packed buffer
        found = self._decode(image, symbols=self._symbols)
        if not found:
            found = self._decode(255 - image, symbols=self._symbols)
        return [symbol.data.decode("utf-8", errors="replace") for symbol in found]


def make_decoder(name: str) -> Decoder:
    """The decoder called ``name``; DecoderUnavailable says which library is missing.

    zxing (the default) falls back to pyzbar when zxing-cpp cannot be
    imported: boards without a zxing-cpp wheel (32-bit ARM) run the default
    config, slower but reading, with one warning saying so. pyzbar asked for
    by name has no fallback: the operator chose it.
    """
    if name == "zxing":
        try:
            return ZxingDecoder()
        except DecoderUnavailable as zxing_missing:
            try:
                decoder = PyzbarDecoder()
            except DecoderUnavailable as pyzbar_missing:
                raise DecoderUnavailable(f"{zxing_missing}; and the fallback: {pyzbar_missing}") from None
            log.warning("decoder zxing unavailable (%s): using pyzbar", zxing_missing)
            return decoder
    if name == "pyzbar":
        return PyzbarDecoder()
    raise SettingsError(f"unknown decoder {name!r} (expected 'zxing' or 'pyzbar')")
