"""Turnstile hardware: relays, passage sensor, lights and buzzer, behind a thin line interface.

The daemon needs only :func:`build_turnstile`, :class:`TurnstileSettings` and what a
:class:`Turnstile` returns. Layers, from the bottom: ``gpio_lines`` (one GPIO line; the
``FakeLine`` in ``fakeline`` is the only fake), ``relay_port`` (a relay board's serial port,
opened by ``gate.serialport``),
``relays`` / ``modbus`` / ``sensors`` / ``signals`` / ``emergency`` (devices),
``turnstile`` (the facade), ``build`` (settings to objects, the line factory by name),
``sim`` (the simulated gate: sim turnstile and visitors on fake lines).
"""

from gate.turnstile.build import build_turnstile
from gate.turnstile.errors import (
    BoardProtocolError,
    LineError,
    ModbusExceptionResponse,
    RelayError,
    SensorError,
    TurnstileError,
)
from gate.turnstile.events import EventKind, PassageResult, TurnstileEvent, TurnstileListener, TurnstileState
from gate.turnstile.settings import (
    GpioRelaySettings,
    LcusSettings,
    LineSettings,
    ModbusSettings,
    SimSettings,
    TurnstileSettings,
)
from gate.turnstile.sim import SimTurnstile
from gate.turnstile.turnstile import Turnstile

__all__ = [
    "BoardProtocolError", "EventKind", "GpioRelaySettings", "LcusSettings", "LineError", "LineSettings",
    "ModbusExceptionResponse", "ModbusSettings", "PassageResult", "RelayError", "SensorError", "SimSettings",
    "SimTurnstile", "Turnstile", "TurnstileError", "TurnstileEvent", "TurnstileListener", "TurnstileSettings",
    "TurnstileState", "build_turnstile",
]
