"""A setting's default and its allowed range, declared once, on the settings dataclass field.

A settings dataclass (``SyncSettings``, ``HubConfig``, ``BrokerConfig``...) writes
``keepalive_s: int = setting(30, low=5, high=65535)``. The config loader
(lungta/config_tables.py) reads the range from here to check a file's value, and the
doc test (tests/test_config_defaults.py) reads the default from here to check the
commented example configs in systemd/. So a default or a bound is written in exactly
one place and every reader of it agrees; before, the loader, the dataclass and the
docs each had their own copy and they had drifted apart.

Lives in ``protocol/`` only because gate, hub and protocol settings all use it and
``protocol/`` is the one package all of them may import; it knows no TOML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

_RANGE = "lungta.range"
_CHOICES = "lungta.choices"


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number setting; printed as the loader's error says it (``1..3600``)."""

    low: float
    high: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.low}..{self.high}"


def setting(default: Any, *, low: float | None = None, high: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field with ``default`` and, for a number, its inclusive range; for a text, its choices.

    Typed ``Any`` like ``dataclasses.field`` so it can stand as any field's default.
    """
    metadata: dict[str, object] = {}
    if low is not None or high is not None:
        if low is None or high is None or not low <= default <= high:
            raise ValueError(f"setting({default!r}): needs low <= default <= high, got {low}..{high}")
        metadata[_RANGE] = Range(low, high)
    if choices:
        if default not in choices:
            raise ValueError(f"setting({default!r}): the default must be one of {choices}")
        metadata[_CHOICES] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def range_of(spec: dataclasses.Field) -> Range | None:
    """The declared range of a number field, or None."""
    found = spec.metadata.get(_RANGE)
    return found if isinstance(found, Range) else None


def choices_of(spec: dataclasses.Field) -> tuple[str, ...]:
    """The declared choices of a text field, or () for any text."""
    found = spec.metadata.get(_CHOICES, ())
    return found if isinstance(found, tuple) else ()


def out_of_range(settings: object) -> str | None:
    """The first field of dataclass instance ``settings`` outside its declared range, said as the loader says it; or None.

    For a ``__post_init__`` that checks values built in code with the same bounds the loader checks files with.
    """
    for spec in dataclasses.fields(settings):  # type: ignore[arg-type]
        bounds, value = range_of(spec), getattr(settings, spec.name)
        if bounds is not None and value not in bounds:
            return f"{spec.name}: {value!r} is outside {bounds}"
    return None


def default_of(cls: type, name: str) -> object:
    """The default of field ``name`` of dataclass ``cls`` (a factory is called); KeyError if it has none."""
    for spec in dataclasses.fields(cls):
        if spec.name == name:
            if spec.default is not dataclasses.MISSING:
                return spec.default
            if spec.default_factory is not dataclasses.MISSING:
                return spec.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name}")
