"""Every failure the scanner layer raises, each naming the device at fault.

The gate daemon turns these into one log line and a health state; nothing
here is caught and silenced inside the layer except where a scanner is
built to survive it (a vanished device is reopened).
"""


class ScannerError(Exception):
    """Base class: something about a scanner, its settings or its decoder is wrong."""


class SettingsError(ScannerError, ValueError):
    """A settings value is out of range; the message names the field and the value."""


class ScannerUnavailable(ScannerError):
    """The device could not be opened or stopped answering (unplugged, missing, busy)."""


class DecoderUnavailable(ScannerError):
    """The QR decoder library (zxing-cpp or pyzbar/libzbar) cannot be loaded on this machine."""
