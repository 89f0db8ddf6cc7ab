"""The turnstile the daemon drives: admit, refuse, emergency, state, shutdown.

It owns the relays (one per direction), the passage sensor, the lights and buzzer and the
emergency-input watcher, all built by :func:`gate.turnstile.build.build_turnstile`.

Thread guarantees:
- ``admit`` runs one admission at a time (callers queue on a lock) and blocks until the
  group has passed or timed out; call it from the daemon's relay thread, never from the
  decoding path.
- ``refuse``, ``set_emergency``, ``state`` and ``shutdown`` may be called from any thread
  at any time, also while an admission runs. Relay commands are serialised by one lock,
  so an emergency opening and an admission closing cannot interleave: while an emergency
  is on, no relay is closed.
- Listeners are called synchronously, in order, from whichever thread caused the event;
  they must be quick and must not call back into the turnstile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from gate.turnstile.emergency import EmergencyWatcher
from gate.turnstile.errors import LineError, RelayError, SensorError, TurnstileError
from gate.turnstile.events import EventKind, PassageResult, TurnstileEvent, TurnstileListener, TurnstileState
from gate.turnstile.relays import Relay
from gate.turnstile.sensors import PassageSensor
from gate.turnstile.settings import TurnstileSettings
from gate.turnstile.signals import Signals
from gate.turnstile.gpio_lines import Line

log = logging.getLogger(__name__)

EMERGENCY_INPUT = "input"
EMERGENCY_COMMAND = "command"


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class _Progress:
    passed: int = 0


class Turnstile:
    """One gate's turnstile. Built closed: every relay is released at construction (a
    board may still be open from a fail-safe stop), then the emergency input is read."""

    def __init__(self, settings: TurnstileSettings, relays: Mapping[str, Relay], sensor: PassageSensor,
                 signals: Signals, emergency_line: Line | None = None, resources: Sequence[Closeable] = (),
                 listeners: Sequence[TurnstileListener] = ()) -> None:
        if "entry" not in relays:
            raise ValueError("relays: an 'entry' relay is required")
        self.settings = settings
        self._relays = dict(relays)
        self._sensor = sensor
        self._signals = signals
        self._resources = list(resources)
        self._listeners = list(listeners)
        self._lock = threading.RLock()  # relay commands, emergency, error state
        self._admit_lock = threading.Lock()  # one admission at a time
        self._stopping = threading.Event()
        self._shut_down = False
        self._emergency: dict[str, str] = {}  # source -> reason
        self._held: set[str] = set()  # directions an admission holds open
        self._last_off: dict[str, float] = {}
        self._admitting: str | None = None
        self._relays_ok = True
        self._emergency_input_ok = True
        self._last_error: str | None = None
        for direction in self._relays:
            self._switch(direction, False)  # RelayError here fails start-up, naming the board
        self._watcher: EmergencyWatcher | None = None
        if emergency_line is not None:
            self._watcher = EmergencyWatcher(emergency_line, self._on_emergency_input, self._on_emergency_input_error)
            self._watcher.start()

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self._relays)

    @property
    def confirms_passage(self) -> bool:
        """Whether a sensor confirms passages (False: each pulse is assumed to be one person through)."""
        return self._sensor.confirmed

    def admit(self, direction: str, persons: int = 1) -> PassageResult:
        """Open ``direction`` for ``persons`` people (a group ticket is one scan) and wait
        until they passed or nobody came for ``passage_timeout_seconds``; then close.

        Hardware failures do not raise: they end the admission and come back in
        ``result.error`` (and ``state().last_error``), with ``passed`` counting who did get
        through, so the daemon commits those and rolls back the rest in every case.
        Raises ValueError for an unknown direction or persons < 1, TurnstileError after
        shutdown.
        """
        direction = str(getattr(direction, "value", direction))  # accepts gate.rules.Direction too
        if direction not in self._relays:
            raise ValueError(f"direction: no relay for {direction!r}; configured: {', '.join(self._relays)}")
        if persons < 1:
            raise ValueError(f"persons: must be >= 1, got {persons}")
        with self._admit_lock:
            if self._stopping.is_set():
                raise TurnstileError("turnstile is shut down; cannot admit")
            self._admitting = direction
            started = time.monotonic()
            progress = _Progress()
            error: str | None = None
            try:
                self._sensor.discard_pending()
                self._emit(EventKind.ADMIT, direction=direction, expected=persons)
                self._signals.granted()
                if self.settings.relay_action == "hold":
                    self._admit_holding(direction, persons, progress)
                else:
                    self._admit_pulsing(direction, persons, progress)
            except (RelayError, SensorError) as exc:
                error = str(exc)
                self._record_error(exc)
                self._close_after_error(direction)
                self._signals.denied()
            finally:
                self._admitting = None
                if direction in self._held:  # only after an unexpected exception: never leave it open
                    self._close_after_error(direction)
            result = PassageResult(
                passed=progress.passed, expected=persons,
                timed_out=error is None and progress.passed < persons and not self._stopping.is_set(),
                started_at=started, ended_at=time.monotonic(), confirmed=self._sensor.confirmed, error=error)
            self._emit(EventKind.ADMIT_DONE, direction=direction, passed=result.passed, expected=persons,
                       reason=error or ("timed out" if result.timed_out else None))
            log.info("admit %s: %d of %d passed%s", direction, result.passed, persons,
                     " (timed out)" if result.timed_out else f" ({error})" if error else "")
            return result

    def watch_passages(self, seconds: float, on_passage: Callable[[int], None], stop: threading.Event | None = None) -> int:
        """Count what the passage sensor reports for ``seconds`` (or until ``stop``), moving no relay.

        A technician's check of the sensor (``lungta gate test sensor``): the
        turnstile's own sensor, debounced as in service; ``on_passage(n)`` runs
        in this thread at the n-th passage. Raises SensorError when the line fails.
        """
        deadline = time.monotonic() + seconds
        count = 0
        while (left := deadline - time.monotonic()) > 0 and not (stop is not None and stop.is_set()):
            if self._sensor.wait_for_passages(1, left, stop) == 1:
                count += 1
                on_passage(count)
        return count

    def refuse(self) -> None:
        """Show a refusal: red light and two beeps. Returns at once."""
        if not self._stopping.is_set():
            self._signals.denied()
            self._emit(EventKind.REFUSE)

    def set_emergency(self, on: bool, reason: str, source: str = EMERGENCY_COMMAND) -> None:
        """Switch free passage on or off: while on, every relay is open and held open.

        Each ``source`` ("command" from the hub or staff, "input" from the fire-alarm
        contact) is tracked on its own; the emergency lasts while any source holds it, so
        a hub command cannot close a gate whose fire alarm is still active.
        """
        with self._lock:
            was_on = bool(self._emergency)
            if on:
                self._emergency[source] = reason
            else:
                self._emergency.pop(source, None)
            now_on = bool(self._emergency)
            if now_on:
                for direction in self._relays:  # also re-asserts a relay that failed before
                    self._switch_logged(direction, True)
            elif was_on:
                for direction in self._relays:
                    if direction not in self._held:
                        self._switch_logged(direction, False)
            summary = "; ".join(f"{src}: {why}" for src, why in self._emergency.items())
            self._emit(EventKind.EMERGENCY, on=now_on, reason=summary if now_on else reason)
        if now_on != was_on:
            self._signals.set_emergency(now_on)
        if on:
            log.warning("emergency ON (%s: %s): all relays open", source, reason)
        elif now_on:
            log.warning("emergency %s cleared (%s) but stays ON: %s", source, reason, summary)
        elif was_on:
            log.warning("emergency OFF (%s: %s): relays back to normal", source, reason)

    def state(self) -> TurnstileState:
        with self._lock:
            return TurnstileState(
                kind=self.settings.kind, emergency=bool(self._emergency),
                emergency_reason="; ".join(f"{src}: {why}" for src, why in self._emergency.items()),
                relays={direction: relay.is_on for direction, relay in self._relays.items()},
                relays_ok=self._relays_ok, sensor_ok=self._sensor.ok, emergency_input_ok=self._emergency_input_ok,
                last_error=self._last_error, fail_mode=self.settings.fail_mode, admitting=self._admitting,
                shut_down=self._shut_down)

    def shutdown(self) -> None:
        """Stop: cut a running admission short, leave the relays in the fail mode
        ("fail-safe" open, "fail-secure" closed; open regardless while an emergency is on)
        and release everything. Idempotent. Boards keep that state after the process
        ends; a released GPIO line may not, so wire fail-safe gates to open de-energised."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.stop()
        with self._admit_lock, self._lock:
            leave_open = self.settings.fail_mode == "fail-safe" or bool(self._emergency)
            self._held.clear()
            for direction in self._relays:
                self._switch_logged(direction, leave_open, force=True)
            self._shut_down = True
            self._emit(EventKind.SHUTDOWN, on=leave_open, reason=self.settings.fail_mode)
        log.info("turnstile shut down (%s): relays left %s", self.settings.fail_mode, "open" if leave_open else "closed")
        self._signals.close()
        closeables: list[Closeable] = [*self._relays.values(), self._sensor, *self._resources]
        for closeable in closeables:
            closeable.close()

    # admission ------------------------------------------------------------------------

    def _admit_pulsing(self, direction: str, persons: int, progress: _Progress) -> None:
        """One pulse per person: a turnstile controller lets one person through per pulse."""
        while progress.passed < persons and not self._stopping.is_set():
            self._pulse(direction)
            base = progress.passed
            got = self._sensor.wait_for_passages(
                1, self.settings.passage_timeout_seconds, self._stopping,
                lambda n: self._passage(direction, progress, base + n, persons))
            if got == 0:
                return
            progress.passed = base + got

    def _admit_holding(self, direction: str, persons: int, progress: _Progress) -> None:
        """Hold the relay while the group passes, then ``hold_open_seconds`` more."""
        self._open_for_admission(direction)
        got = self._sensor.wait_for_passages(
            persons, self.settings.passage_timeout_seconds, self._stopping,
            lambda n: self._passage(direction, progress, n, persons))
        progress.passed = max(progress.passed, got)
        if self.settings.hold_open_seconds > 0:
            self._stopping.wait(self.settings.hold_open_seconds)
        self._close_for_admission(direction)

    def _pulse(self, direction: str) -> None:
        pulse = self.settings.pulse_seconds
        # Keep at least one pulse length between pulses, or a controller sees one long pulse.
        gap = self._last_off.get(direction, float("-inf")) + pulse - time.monotonic()
        if gap > 0:
            self._stopping.wait(gap)
        self._open_for_admission(direction)
        self._stopping.wait(pulse)
        self._close_for_admission(direction)
        self._last_off[direction] = time.monotonic()

    def _passage(self, direction: str, progress: _Progress, passed: int, expected: int) -> None:
        progress.passed = passed
        self._emit(EventKind.PASSAGE, direction=direction, passed=passed, expected=expected)

    def _close_after_error(self, direction: str) -> None:
        """Try to close after a failure: a relay whose answer was lost may still have switched."""
        with self._lock:
            self._held.discard(direction)
            self._switch_logged(direction, False)

    # relays ---------------------------------------------------------------------------

    def _switch(self, direction: str, on: bool, force: bool = False) -> None:
        """Command one relay, keeping emergency's promise: nothing closes while it is on
        (``force`` is only for shutdown). Raises RelayError."""
        with self._lock:
            if not on and self._emergency and not force:
                return
            relay = self._relays[direction]
            changed = relay.is_on != on
            relay.set(on)  # commanded even when unchanged: re-asserts a board that was reset
            self._relays_ok = True
            if changed:
                self._emit(EventKind.RELAY, direction=direction, on=on)

    def _open_for_admission(self, direction: str) -> None:
        with self._lock:
            self._held.add(direction)
            self._switch(direction, True)

    def _close_for_admission(self, direction: str) -> None:
        with self._lock:
            self._held.discard(direction)
            self._switch(direction, False)

    def _switch_logged(self, direction: str, on: bool, force: bool = False) -> None:
        """Like ``_switch`` but a failure is recorded and the caller goes on with the
        other relays (emergency, shutdown: one dead relay must not keep the others shut)."""
        try:
            self._switch(direction, on, force)
        except RelayError as exc:
            self._record_error(exc)

    def _record_error(self, exc: Exception) -> None:
        with self._lock:
            self._last_error = str(exc)
            if isinstance(exc, RelayError):
                self._relays_ok = False
            self._emit(EventKind.ERROR, reason=str(exc))
        log.error("turnstile: %s", exc)

    # emergency input ------------------------------------------------------------------

    def _on_emergency_input(self, active: bool) -> None:
        with self._lock:
            self._emergency_input_ok = True
        if active or EMERGENCY_INPUT in self._emergency:
            self.set_emergency(active, "emergency input " + ("active" if active else "cleared"), EMERGENCY_INPUT)

    def _on_emergency_input_error(self, exc: LineError) -> None:
        with self._lock:
            self._emergency_input_ok = False
        self._record_error(exc)

    # events ---------------------------------------------------------------------------

    def _emit(self, kind: EventKind, **fields: object) -> None:
        event = TurnstileEvent(kind, time.monotonic(), **fields)  # type: ignore[arg-type]
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken recorder must not stop the gate; it is logged
                log.exception("turnstile listener %r failed on %s", listener, kind.value)
