"""``build_turnstile``: settings in, a working :class:`Turnstile` out.

The one place that knows which classes a ``kind`` means. On any failure everything
opened so far is closed again and the error names the device (a missing chip, an
unplugged board), so the daemon can report it in one line at start-up.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

from gate.turnstile.events import TurnstileListener
from gate.turnstile.fakeline import FakeLineFactory
from gate.turnstile.gpio_lines import Edge, Line, LineDirection, LineFactory, PeripheryLineFactory
from gate.turnstile.modbus import ModbusRelay, ModbusRelayModule
from gate.turnstile.relays import GpioRelay, LcusBoard, LcusRelay, Relay
from gate.turnstile.sensors import LinePassageSensor, ModbusPassageSensor, NoPassageSensor, PassageSensor
from gate.turnstile.settings import GpioRelaySettings, LineSettings, TurnstileSettings
from gate.turnstile.signals import Signals
from gate.turnstile.sim import SIM_CHIP, SIM_LINES, JsonLinesRecorder, SimTurnstile, SimulatedVisitors
from gate.turnstile.turnstile import Closeable, Turnstile

log = logging.getLogger(__name__)

LINE_FACTORIES: tuple[str, ...] = ("periphery", "fake")


def line_factory(name: str) -> LineFactory:
    """The factory configured by name: "periphery" for real chips, "fake" for
    :class:`~gate.turnstile.fakeline.FakeLineFactory` (tests, simulator, bench)."""
    if name == "periphery":
        return PeripheryLineFactory()
    if name == "fake":
        return FakeLineFactory()
    raise ValueError(f"line_factory: unknown {name!r}; expected one of {', '.join(LINE_FACTORIES)}")


def build_turnstile(settings: TurnstileSettings, lines: LineFactory | None = None,
                    listeners: Sequence[TurnstileListener] = ()) -> Turnstile:
    """Build the turnstile ``settings`` describe, relays closed and watching its inputs.

    ``lines`` overrides the line factory named in ``settings.line_factory`` (tests pass a
    :class:`FakeLineFactory` to reach the lines); ``listeners`` receive every event.
    Kind "sim" returns a :class:`SimTurnstile`. Raises TurnstileError subclasses naming
    the device when hardware cannot be opened.
    """
    if settings.kind == "sim":
        return _build_sim(settings, listeners)
    return _Builder(settings, lines or line_factory(settings.line_factory)).build(Turnstile, settings, listeners)


def _build_sim(settings: TurnstileSettings, listeners: Sequence[TurnstileListener]) -> SimTurnstile:
    """The GPIO build over fake lines at fixed offsets, plus visitors and a recorder."""

    def sim_line(role: str) -> LineSettings:
        return LineSettings(SIM_LINES[role], chip=SIM_CHIP)

    hardware = dataclasses.replace(
        settings, kind="gpio", line_factory="fake",
        gpio=GpioRelaySettings(entry=sim_line("entry_relay"), exit=sim_line("exit_relay")),
        passage_sensor=sim_line("passage_sensor"), passage_confirmation=True,
        green_light=sim_line("green_light"), red_light=sim_line("red_light"), buzzer=sim_line("buzzer"),
        emergency_input=sim_line("emergency_input"))
    factory = FakeLineFactory()
    visitors = SimulatedVisitors(lambda: factory.line(SIM_CHIP, SIM_LINES["passage_sensor"]),
                                 settings.sim.passage_delay_seconds, settings.sim.persons_passing)
    builder = _Builder(hardware, factory, [visitors])
    sim_listeners: list[TurnstileListener] = [visitors]
    if settings.sim.output_path:
        try:
            recorder = JsonLinesRecorder(settings.sim.output_path)
        except OSError:
            visitors.close()
            raise
        builder.resources.append(recorder)
        sim_listeners.append(recorder)
    turnstile = builder.build(SimTurnstile, settings, [*sim_listeners, *listeners])
    assert isinstance(turnstile, SimTurnstile)
    turnstile.lines = factory
    turnstile.visitors = visitors
    return turnstile


class _Builder:
    """Opens devices for one build, remembering each so a failure closes them all.
    ``resources`` are the shared things (boards, sim helpers) the turnstile closes last."""

    def __init__(self, hardware: TurnstileSettings, factory: LineFactory, resources: Sequence[Closeable] = ()) -> None:
        self.hw = hardware
        self.factory = factory
        self.resources: list[Closeable] = list(resources)
        self._opened: list[Closeable] = []

    def build(self, cls: type[Turnstile], settings: TurnstileSettings,
              listeners: Sequence[TurnstileListener]) -> Turnstile:
        try:
            relays, module = self._relays()
            sensor = self._sensor(module)
            signals = Signals(self._line(self.hw.green_light, "out", "green light"),
                              self._line(self.hw.red_light, "out", "red light"),
                              self._line(self.hw.buzzer, "out", "buzzer"),
                              self.hw.signal_seconds, self.hw.beep_seconds)
            self._opened.append(signals)
            emergency = self._line(self.hw.emergency_input, "in", "emergency input", edge="both")
            return cls(settings, relays, sensor, signals, emergency, self.resources, listeners)
        except BaseException:
            for closeable in reversed(self._opened + self.resources):
                closeable.close()
            raise

    def _relays(self) -> tuple[dict[str, Relay], ModbusRelayModule | None]:
        hw = self.hw
        relays: dict[str, Relay] = {}
        if hw.kind == "gpio":
            assert hw.gpio is not None
            for direction, line_settings in (("entry", hw.gpio.entry), ("exit", hw.gpio.exit)):
                line = self._line(line_settings, "out", f"{direction} relay")
                if line is not None:
                    relays[direction] = GpioRelay(line, f"{direction} relay on {line.name}")
            return relays, None
        if hw.kind == "lcus":
            assert hw.lcus is not None
            board = LcusBoard(hw.lcus.port, hw.lcus.baudrate)
            self.resources.append(board)
            for direction, channel in (("entry", hw.lcus.entry_channel), ("exit", hw.lcus.exit_channel)):
                if channel is not None:
                    relays[direction] = LcusRelay(board, channel, f"{direction} relay")
            return relays, None
        assert hw.kind == "modbus" and hw.modbus is not None
        mb = hw.modbus
        module = ModbusRelayModule(mb.port, mb.slave, mb.baudrate, mb.response_timeout_seconds, mb.retries, mb.parity, mb.stop_bits)
        self.resources.append(module)
        for direction, coil in (("entry", mb.entry_coil), ("exit", mb.exit_coil)):
            if coil is not None:
                relays[direction] = ModbusRelay(module, coil, f"{direction} relay")
        return relays, module

    def _sensor(self, module: ModbusRelayModule | None) -> PassageSensor:
        hw = self.hw
        line = self._line(hw.passage_sensor, "in", "passage sensor", edge="rising")
        if line is not None:
            return LinePassageSensor(line, hw.sensor_debounce_seconds)
        if module is not None and hw.modbus is not None and hw.modbus.passage_input is not None:
            return ModbusPassageSensor(module, hw.modbus.passage_input, hw.modbus.input_poll_seconds)
        log.warning("turnstile has no passage sensor: admissions are assumed, not confirmed")
        return NoPassageSensor()

    def _line(self, settings: LineSettings | None, direction: LineDirection, label: str, edge: Edge = "none") -> Line | None:
        if settings is None:
            return None
        line = self.factory.open(settings, direction, edge=edge, label=label)
        self._opened.append(line)
        return line
