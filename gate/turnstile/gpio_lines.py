"""The lowest layer: one digital line, in python-periphery's GPIO shape.

Everything above (relays, passage sensor, lights, buzzer, emergency input) talks to a
:class:`Line` made by a :class:`LineFactory`; nothing above touches ``periphery`` or
``/dev/gpiochip*``. The factory is chosen by name in the settings (``"periphery"`` on a
gate, ``"fake"`` in tests and the simulator), never by changing code.

Values passed to ``read``/``write`` are *logical*: ``True`` means active (relay energised,
beam broken, alarm contact closed). Active-low wiring is the line's ``inverted`` flag, as
in the kernel's character-device API, so devices never invert by hand.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gate.turnstile.errors import LineError
from gate.turnstile.settings import LineSettings

log = logging.getLogger(__name__)

LineDirection = Literal["in", "out"]
Edge = Literal["none", "rising", "falling", "both"]
EDGES: tuple[str, ...] = ("none", "rising", "falling", "both")


@dataclass(frozen=True)
class LineEvent:
    """One edge seen on an input: ``edge`` is "rising" (became active) or "falling",
    ``timestamp`` in seconds on a monotonic clock (only differences are meaningful)."""

    edge: str
    timestamp: float


class Line(ABC):
    """A digital line. Not thread-safe by itself except where an implementation says so;
    each device owns its line and serialises its own use."""

    name: str
    direction: LineDirection
    inverted: bool

    @abstractmethod
    def read(self) -> bool:
        """The logical value now."""

    @abstractmethod
    def write(self, value: bool) -> None:
        """Set an output's logical value; an input raises :class:`LineError`."""

    @abstractmethod
    def poll(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an edge event; True if one is pending.
        The event stays pending until :meth:`read_event` consumes it."""

    @abstractmethod
    def read_event(self) -> LineEvent:
        """Consume the oldest pending edge event (blocks until there is one)."""

    @abstractmethod
    def close(self) -> None:
        """Release the line. Idempotent."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.direction}{' active-low' if self.inverted else ''}>"


class LineFactory(Protocol):
    """Opens lines described by settings. ``label`` names the line's use (e.g. "entry
    relay") and shows up in error messages and, on real chips, as the line consumer."""

    def open(self, settings: LineSettings, direction: LineDirection, edge: Edge = "none", label: str = "") -> Line: ...


def line_name(settings: LineSettings) -> str:
    return f"{settings.chip} line {settings.line}"


class PeripheryLine(Line):
    """A GPIO character-device line through ``periphery.GPIO``. Deliberately thin:
    it translates arguments and turns ``GPIOError`` into :class:`LineError` naming the
    chip and line; it holds no state of its own."""

    def __init__(self, settings: LineSettings, direction: LineDirection, edge: Edge = "none", label: str = "") -> None:
        from periphery import GPIO, GPIOError  # imported here: only real gates need it

        self._error_type = GPIOError
        self.name = f"{line_name(settings)} ({label})" if label else line_name(settings)
        self.direction = direction
        self.inverted = settings.active_low
        # "low" requests an output that starts inactive (logical 0), so a relay never
        # clicks while the daemon starts.
        periphery_direction = "low" if direction == "out" else "in"
        try:
            self._gpio = GPIO(
                settings.chip,
                settings.line,
                periphery_direction,
                edge=edge if direction == "in" else "none",
                bias=settings.bias,
                inverted=settings.active_low,
                label=f"lungta {label}".strip(),
            )
        except (GPIOError, OSError, TypeError, ValueError) as exc:
            raise LineError(f"cannot open {self.name}: {exc}") from exc
        self._closed = False

    def read(self) -> bool:
        try:
            return bool(self._gpio.read())
        except (self._error_type, OSError) as exc:
            raise LineError(f"cannot read {self.name}: {exc}") from exc

    def write(self, value: bool) -> None:
        if self.direction != "out":
            raise LineError(f"cannot write {self.name}: it is an input")
        try:
            self._gpio.write(bool(value))
        except (self._error_type, OSError) as exc:
            raise LineError(f"cannot write {self.name}: {exc}") from exc

    def poll(self, timeout: float) -> bool:
        try:
            return bool(self._gpio.poll(max(0.0, timeout)))
        except (self._error_type, OSError) as exc:
            raise LineError(f"cannot poll {self.name}: {exc}") from exc

    def read_event(self) -> LineEvent:
        try:
            event: Any = self._gpio.read_event()  # periphery's stub omits EdgeEvent's fields
        except (self._error_type, OSError) as exc:
            raise LineError(f"cannot read an event from {self.name}: {exc}") from exc
        return LineEvent(edge=event.edge, timestamp=event.timestamp / 1e9)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._gpio.close()
            except (self._error_type, OSError) as exc:
                log.warning("closing %s failed: %s", self.name, exc)


class PeripheryLineFactory:
    """Opens :class:`PeripheryLine` lines on the GPIO character devices."""

    def open(self, settings: LineSettings, direction: LineDirection, edge: Edge = "none", label: str = "") -> Line:
        return PeripheryLine(settings, direction, edge, label)
