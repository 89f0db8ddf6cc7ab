"""Turnstile settings: plain frozen dataclasses with defaults, validated on construction.

They mirror the ``[turnstile]`` table of ``gate.toml`` one to one (a sub-table becomes a
nested dataclass, a missing key the default, an absent optional device ``None``), so the
config loader only has to construct them. Every value is checked in ``__post_init__``
and a bad one raises ``ValueError`` whose message starts with the field's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("gpio", "lcus", "modbus", "sim")
FAIL_MODES = ("fail-safe", "fail-secure")
RELAY_ACTIONS = ("pulse", "hold")
BIASES = ("default", "pull_up", "pull_down", "disable")


def _require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{path}: {message}")


def _non_negative(value: float, path: str) -> None:
    _require(isinstance(value, (int, float)) and value >= 0, path, f"must be a number >= 0, got {value!r}")


def _positive(value: float, path: str) -> None:
    _require(isinstance(value, (int, float)) and value > 0, path, f"must be a number > 0, got {value!r}")


@dataclass(frozen=True)
class LineSettings:
    """One GPIO line: ``chip`` is the character device, ``line`` the offset on it.

    ``active_low`` is set when the device is active at 0 V: most opto-isolated relay
    boards, NPN beam sensors, an alarm contact pulling the line to ground.
    """

    line: int
    chip: str = "/dev/gpiochip0"
    active_low: bool = False
    bias: str = "default"  # "default" | "pull_up" | "pull_down" | "disable"

    def __post_init__(self) -> None:
        _require(isinstance(self.line, int) and not isinstance(self.line, bool) and self.line >= 0,
                 "line", f"must be an integer >= 0, got {self.line!r}")
        _require(isinstance(self.chip, str) and bool(self.chip), "chip", "must name a GPIO chip, e.g. /dev/gpiochip0")
        _require(self.bias in BIASES, "bias", f"must be one of {', '.join(BIASES)}, got {self.bias!r}")


@dataclass(frozen=True)
class GpioRelaySettings:
    """Relays wired to GPIO lines, one per direction; no exit relay means entry only."""

    entry: LineSettings
    exit: LineSettings | None = None

    def __post_init__(self) -> None:
        _require(self.exit is None or (self.exit.chip, self.exit.line) != (self.entry.chip, self.entry.line),
                 "gpio.exit", "must not be the same line as gpio.entry")


@dataclass(frozen=True)
class LcusSettings:
    """A CH340 USB relay board speaking the LCUS frames (A0, channel, state, sum).

    ``port`` is a device path (/dev/ttyUSB0, better /dev/serial/by-id/...), a pty path
    or a pyserial URL such as ``loop://``. Channels count from 1 as printed on the board.
    """

    port: str
    baudrate: int = 9600
    entry_channel: int = 1
    exit_channel: int | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.port, str) and bool(self.port), "lcus.port", "must name a serial port or URL")
        _positive(self.baudrate, "lcus.baudrate")
        for path, channel in (("lcus.entry_channel", self.entry_channel), ("lcus.exit_channel", self.exit_channel)):
            if channel is not None:
                _require(isinstance(channel, int) and 1 <= channel <= 8, path, f"must be 1..8, got {channel!r}")
        _require(self.exit_channel != self.entry_channel, "lcus.exit_channel", "must differ from lcus.entry_channel")


@dataclass(frozen=True)
class ModbusSettings:
    """A Modbus RTU relay module on RS-485: coils are relays (0-based addresses as in
    the Modbus PDU), ``passage_input`` an optional discrete input counting passages."""

    port: str
    baudrate: int = 9600
    slave: int = 1
    entry_coil: int = 0
    exit_coil: int | None = None
    passage_input: int | None = None
    response_timeout_seconds: float = 0.3
    retries: int = 1
    input_poll_seconds: float = 0.02
    parity: str = "none"
    stop_bits: int = 1

    def __post_init__(self) -> None:
        _require(isinstance(self.port, str) and bool(self.port), "modbus.port", "must name a serial port or URL")
        _positive(self.baudrate, "modbus.baudrate")
        _require(self.parity in ("none", "even", "odd"), "modbus.parity", f'must be "none", "even" or "odd", got {self.parity!r}')
        _require(self.stop_bits in (1, 2) and not isinstance(self.stop_bits, bool), "modbus.stop_bits", f"must be 1 or 2, got {self.stop_bits!r}")
        _require(isinstance(self.slave, int) and 1 <= self.slave <= 247, "modbus.slave", f"must be 1..247, got {self.slave!r}")
        for path, address in (("modbus.entry_coil", self.entry_coil), ("modbus.exit_coil", self.exit_coil),
                              ("modbus.passage_input", self.passage_input)):
            if address is not None:
                _require(isinstance(address, int) and 0 <= address <= 0xFFFF, path, f"must be 0..65535, got {address!r}")
        _require(self.exit_coil != self.entry_coil, "modbus.exit_coil", "must differ from modbus.entry_coil")
        _positive(self.response_timeout_seconds, "modbus.response_timeout_seconds")
        _require(isinstance(self.retries, int) and 0 <= self.retries <= 5, "modbus.retries", f"must be 0..5, got {self.retries!r}")
        _positive(self.input_poll_seconds, "modbus.input_poll_seconds")


@dataclass(frozen=True)
class SimSettings:
    """The simulated turnstile (kind "sim"): fake lines, simulated visitors, a JSON-lines log.

    Each admitted group walks through ``passage_delay_seconds`` apart after the gate
    opens; ``persons_passing`` caps how many of a group walk (None: all, 0: nobody, which
    makes every admission time out and be rolled back).
    """

    output_path: str | None = None
    passage_delay_seconds: float = 0.05
    persons_passing: int | None = None

    def __post_init__(self) -> None:
        _non_negative(self.passage_delay_seconds, "sim.passage_delay_seconds")
        if self.persons_passing is not None:
            _require(isinstance(self.persons_passing, int) and self.persons_passing >= 0,
                     "sim.persons_passing", f"must be an integer >= 0, got {self.persons_passing!r}")


@dataclass(frozen=True)
class TurnstileSettings:
    """Everything the turnstile needs; :func:`gate.turnstile.build.build_turnstile` builds it.

    Timing: with ``relay_action="pulse"`` the direction's relay is energised for
    ``pulse_seconds`` once per person (a turnstile controller takes one pulse per
    passage); with ``"hold"`` it stays energised until the group has passed or timed out,
    then ``hold_open_seconds`` longer (a swing gate or maglock). ``passage_timeout_seconds``
    is the longest wait for the *next* person, so a group is not rushed.

    ``fail_mode`` decides what ``shutdown()`` leaves the relays in: "fail-safe" open,
    "fail-secure" closed. An active emergency always leaves them open.
    """

    kind: str = "sim"
    line_factory: str = "periphery"  # "periphery" | "fake"
    relay_action: str = "pulse"
    pulse_seconds: float = 0.3
    hold_open_seconds: float = 0.0
    passage_timeout_seconds: float = 10.0
    passage_confirmation: bool = True
    fail_mode: str = "fail-secure"
    gpio: GpioRelaySettings | None = None
    lcus: LcusSettings | None = None
    modbus: ModbusSettings | None = None
    sim: SimSettings = field(default_factory=SimSettings)
    passage_sensor: LineSettings | None = None
    sensor_debounce_seconds: float = 0.0
    green_light: LineSettings | None = None
    red_light: LineSettings | None = None
    buzzer: LineSettings | None = None
    emergency_input: LineSettings | None = None
    signal_seconds: float = 1.0
    beep_seconds: float = 0.1

    def __post_init__(self) -> None:
        _require(self.kind in KINDS, "turnstile.kind", f"must be one of {', '.join(KINDS)}, got {self.kind!r}")
        _require(self.line_factory in ("periphery", "fake"), "turnstile.line_factory",
                 f"must be 'periphery' or 'fake', got {self.line_factory!r}")
        _require(self.relay_action in RELAY_ACTIONS, "turnstile.relay_action",
                 f"must be one of {', '.join(RELAY_ACTIONS)}, got {self.relay_action!r}")
        _require(self.fail_mode in FAIL_MODES, "turnstile.fail_mode",
                 f"must be one of {', '.join(FAIL_MODES)}, got {self.fail_mode!r}")
        _positive(self.pulse_seconds, "turnstile.pulse_seconds")
        _non_negative(self.hold_open_seconds, "turnstile.hold_open_seconds")
        _positive(self.passage_timeout_seconds, "turnstile.passage_timeout_seconds")
        _non_negative(self.sensor_debounce_seconds, "turnstile.sensor_debounce_seconds")
        _non_negative(self.signal_seconds, "turnstile.signal_seconds")
        _non_negative(self.beep_seconds, "turnstile.beep_seconds")
        for kind in ("gpio", "lcus", "modbus"):
            if self.kind == kind:
                _require(getattr(self, kind) is not None, f"turnstile.{kind}", f"is required when kind is {kind!r}")
        if self.passage_confirmation and self.kind != "sim":
            has_modbus_input = self.kind == "modbus" and self.modbus is not None and self.modbus.passage_input is not None
            _require(self.passage_sensor is not None or has_modbus_input, "turnstile.passage_sensor",
                     "is required while passage_confirmation is true (or modbus.passage_input with kind 'modbus')")
        self._check_lines_distinct()

    def _check_lines_distinct(self) -> None:
        named: list[tuple[str, LineSettings]] = []
        if self.kind == "gpio" and self.gpio is not None:
            named += [("gpio.entry", self.gpio.entry)] + ([("gpio.exit", self.gpio.exit)] if self.gpio.exit else [])
        for name in ("passage_sensor", "green_light", "red_light", "buzzer", "emergency_input"):
            line = getattr(self, name)
            if line is not None:
                named.append((f"turnstile.{name}", line))
        seen: dict[tuple[str, int], str] = {}
        for path, line in named:
            key = (line.chip, line.line)
            _require(key not in seen, path, f"uses {line.chip} line {line.line}, already used by {seen.get(key)}")
            seen[key] = path
