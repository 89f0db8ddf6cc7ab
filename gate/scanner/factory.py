"""Settings in, scanner out: the one place that knows which class serves which kind.

Each kind's module is imported only when it is used, so a gate with a
serial scanner never loads OpenCV and a gate without evdev can still run a
camera.
"""

from __future__ import annotations

from .base import DeviceScanner
from .errors import SettingsError
from .settings import CameraSettings, HidSettings, ScannerSettings, SerialSettings


def open_scanner(settings: ScannerSettings) -> DeviceScanner:
    """A scanner for ``settings``; the device itself is opened (and reopened) by ``scans()``.

    Raises SettingsError or DecoderUnavailable at once, so a gate with a bad
    configuration refuses to start instead of failing at the first visitor.
    """
    if isinstance(settings, CameraSettings):
        from .camera import CameraScanner

        return CameraScanner(settings)
    if isinstance(settings, SerialSettings):
        from .serial_scanner import SerialScanner

        return SerialScanner(settings)
    if isinstance(settings, HidSettings):
        from .hid import HidScanner

        return HidScanner(settings)
    raise SettingsError(f"no scanner for settings of type {type(settings).__name__}")
