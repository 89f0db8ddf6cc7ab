"""Settings for each scanner kind: plain frozen dataclasses, one per kind.

gate.toml is parsed into these by the daemon; every field has a default a
typical gate can run with, and ``__post_init__`` refuses values that cannot
work, naming the field, so a bad config fails at start-up, not at the
first visitor.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SettingsError

DECODERS = ("zxing", "pyzbar")
DEFAULT_DECODER = "zxing"  # bench/bench_decode.py: more photos read, 8-14x faster than pyzbar
TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
ON_END = ("auto", "stop", "loop", "reopen")
DEFAULT_DEDUPE_SECONDS = 2.0
MAX_CODE_LENGTH = 1024  # protocol.ticket.MAX_TEXT_LENGTH: anything longer is not a ticket


def _check_common(kind: str, dedupe_seconds: float, reopen_backoff: float, reopen_backoff_max: float) -> None:
    if dedupe_seconds < 0:
        raise SettingsError(f"{kind}.dedupe_seconds must be >= 0, got {dedupe_seconds}")
    if not 0 < reopen_backoff <= reopen_backoff_max:
        raise SettingsError(f"{kind}: need 0 < reopen_backoff ({reopen_backoff}) <= reopen_backoff_max ({reopen_backoff_max})")


@dataclass(frozen=True)
class CameraSettings:
    """A camera, a network stream, a video file or a folder of images, decoded frame by frame.

    ``source``: a V4L2 index (0) or device path (/dev/video0, better
    /dev/v4l/by-id/...), an rtsp:// or http:// URL, a video file, or a folder
    of images played one per frame (for demos and set-up checks).
    ``roi`` is (x, y, width, height) in pixels of the captured frame; the
    decoder only sees that part, which is both faster and keeps codes held up
    by people in the queue behind out. ``downscale`` (0 < f <= 1) shrinks what
    the decoder sees, for cameras whose codes are large in the frame.
    ``on_end``: what a file source does when it ends: "stop" (the default
    for files and folders under "auto"), "loop" (play again), or "reopen"
    (treat it as a vanished camera); live sources always reopen.
    """

    source: str | int = 0
    width: int | None = None  # capture size requested from a device; None keeps the driver's
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None  # pixel format requested from a device, e.g. "MJPG" for 720p at 30 fps over USB 2
    roi: tuple[int, int, int, int] | None = None
    downscale: float = 1.0
    decoder: str = DEFAULT_DECODER
    dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS
    reopen_backoff: float = 0.5  # first wait before reopening a vanished camera; doubles each failure
    reopen_backoff_max: float = 10.0
    stream_timeout: float = 5.0  # seconds an rtsp/http stream may stall before it counts as vanished
    on_end: str = "auto"

    def __post_init__(self) -> None:
        # Config files give "0" for /dev/video0 and lists for tuples; normalise so values compare and hash.
        if isinstance(self.source, str) and self.source.isdigit():
            object.__setattr__(self, "source", int(self.source))
        if self.roi is not None:
            object.__setattr__(self, "roi", tuple(self.roi))
        _check_common("camera", self.dedupe_seconds, self.reopen_backoff, self.reopen_backoff_max)
        if self.decoder not in DECODERS:
            raise SettingsError(f"camera.decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if not 0 < self.downscale <= 1:
            raise SettingsError(f"camera.downscale must be in (0, 1], got {self.downscale}")
        if self.roi is not None and (len(self.roi) != 4 or min(self.roi[2:]) <= 0 or min(self.roi[:2]) < 0):
            raise SettingsError(f"camera.roi must be (x, y, width, height) with x, y >= 0 and a positive size, got {self.roi}")
        if self.on_end not in ON_END:
            raise SettingsError(f"camera.on_end must be one of {', '.join(ON_END)}, got {self.on_end!r}")
        if self.stream_timeout <= 0:
            raise SettingsError(f"camera.stream_timeout must be > 0, got {self.stream_timeout}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise SettingsError(f"camera.fourcc must be four characters such as 'MJPG', got {self.fourcc!r}")


@dataclass(frozen=True)
class SerialSettings:
    """A serial scanner module (UART, USB CDC-ACM or USB-serial) that sends one line per code.

    ``port``: a device path (/dev/ttyACM0, better /dev/serial/by-id/...), a
    pty path, or a pyserial URL (loop://, socket://host:port, rfc2217://...).
    ``terminator`` is the suffix the module is configured to send; stray CR or
    LF around a line are ignored either way, so CR also reads CRLF modules.
    A line longer than ``max_line`` bytes is discarded whole. A fragment left
    without terminator for ``partial_timeout`` seconds is dropped when more
    bytes arrive, so a half-sent code never glues onto the next one.
    """

    port: str
    baudrate: int = 9600
    terminator: str = "CR"
    max_line: int = MAX_CODE_LENGTH
    partial_timeout: float = 0.5
    dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS
    reopen_backoff: float = 0.5
    reopen_backoff_max: float = 10.0

    def __post_init__(self) -> None:
        _check_common("serial", self.dedupe_seconds, self.reopen_backoff, self.reopen_backoff_max)
        if not self.port:
            raise SettingsError("serial.port must name a device, pty or pyserial URL")
        if self.terminator not in TERMINATORS:
            raise SettingsError(f"serial.terminator must be one of {', '.join(TERMINATORS)}, got {self.terminator!r}")
        if self.baudrate <= 0 or self.max_line <= 0 or self.partial_timeout <= 0:
            raise SettingsError(f"serial: baudrate ({self.baudrate}), max_line ({self.max_line}) and partial_timeout ({self.partial_timeout}) must be positive")


@dataclass(frozen=True)
class HidSettings:
    """A USB scanner that types like a keyboard (keyboard wedge), read through evdev.

    ``device``: its event device, best /dev/input/by-id/usb-...-event-kbd so
    the name survives re-plugging. ``grab`` takes the device exclusively so
    its keystrokes never reach a console or login prompt on the gate.
    ``end_keys`` are evdev key names that end a code. Characters typed and
    left without an end key for ``partial_timeout`` seconds are dropped.
    """

    device: str
    grab: bool = True
    end_keys: tuple[str, ...] = ("KEY_ENTER", "KEY_KPENTER")
    max_code: int = MAX_CODE_LENGTH
    partial_timeout: float = 0.5
    dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS
    reopen_backoff: float = 0.5
    reopen_backoff_max: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "end_keys", tuple(self.end_keys))
        _check_common("hid", self.dedupe_seconds, self.reopen_backoff, self.reopen_backoff_max)
        if not self.device:
            raise SettingsError("hid.device must name an event device")
        if not self.end_keys:
            raise SettingsError("hid.end_keys must name at least one key")
        if self.max_code <= 0 or self.partial_timeout <= 0:
            raise SettingsError(f"hid: max_code ({self.max_code}) and partial_timeout ({self.partial_timeout}) must be positive")


ScannerSettings = CameraSettings | SerialSettings | HidSettings
