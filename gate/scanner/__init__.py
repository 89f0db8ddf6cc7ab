"""QR ticket readers: camera, serial scanner modules, keyboard-wedge HID scanners.

Every kind yields the same stream: ``Scan(text, source, read_at)``, each
code once (``Deduplicator``), from a blocking ``scans(stop)`` generator that
the gate daemon runs on its own thread per scanner. Build one with
``open_scanner(CameraSettings(...) | SerialSettings(...) | HidSettings(...))``.
Importing this package loads neither OpenCV nor evdev; the factory loads
what the configured kind needs.
"""

from .backoff import Backoff
from .base import Reading, Scan, Scanner, ScannerHealth
from .dedupe import Deduplicator
from .errors import DecoderUnavailable, ScannerError, ScannerUnavailable, SettingsError
from .factory import open_scanner
from .settings import DEFAULT_DECODER, CameraSettings, HidSettings, ScannerSettings, SerialSettings

__all__ = [
    "DEFAULT_DECODER",
    "Backoff",
    "CameraSettings",
    "DecoderUnavailable",
    "Deduplicator",
    "HidSettings",
    "Reading",
    "Scan",
    "Scanner",
    "ScannerError",
    "ScannerHealth",
    "ScannerSettings",
    "ScannerUnavailable",
    "SerialSettings",
    "SettingsError",
    "open_scanner",
]
