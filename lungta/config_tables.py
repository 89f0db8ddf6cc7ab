"""Reading a TOML table into a settings dataclass: types, defaults and bounds from the fields.

Every table of gate.toml and hub.toml is read here and only here. What a key may
hold is what its dataclass field says: the annotation gives the type, the field's
default is the default, and ``protocol.bounds.setting`` gives a number's range or a
text's choices. So the parts keep their defaults next to their fields and the
loader has no numbers of its own (see docs/ARCHITECTURE.md, "Configuration").

Every mistake is a ``ConfigError`` of one line naming the file and the dotted key;
keys nobody read are errors too (``Section.finish``), so a typo never falls back to
a default on a gate.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.bounds import choices_of, range_of
from protocol.files import UnreadableFile, read_toml_file
from protocol.topics import TopicError, check_name

from .errors import LungtaError


class ConfigError(LungtaError):
    """A configuration file is wrong; the message is the one line the operator sees."""


_REQUIRED = object()


class Section:
    """Checked access to one TOML table; remembers which keys were read."""

    def __init__(self, data: dict, file: Path, path: str) -> None:
        self.data, self.file, self.path = data, file, path
        self.read: set[str] = set()
        self._children: dict[str, Section] = {}

    def where(self, key: str) -> str:
        """``file: table.key``: how every error starts."""
        return f"{self.file}: {self.path + '.' if self.path else ''}{key}"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: object = None) -> object:
        """The value as TOML gave it (marked read), for the few keys with a shape of their own."""
        self.read.add(key)
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None) -> str:
        """A non-empty string; required when ``default`` is None."""
        self.read.add(key)
        if key not in self.data:
            if default is None:
                raise self.error(key, "missing (expected a string)")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        if not value:
            raise self.error(key, "must not be empty")
        return value

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = list(choices)
        value = self.text(key, default)
        if value not in options:
            raise self.error(key, f"{value!r} is not one of {', '.join(options)}")
        return value

    def path_value(self, key: str, default: str | None = None) -> Path:
        """A path; relative paths are taken relative to the config file."""
        raw = Path(self.text(key, default))
        return raw if raw.is_absolute() else self.file.parent / raw

    def name(self, key: str) -> str:
        """A site or gate id: one MQTT topic level (see protocol/topics.py)."""
        value = self.text(key)
        try:
            return check_name(value, key)
        except TopicError as error:
            raise self.error(key, str(error)) from None

    def table(self, key: str) -> "Section":
        """The sub-table ``key`` (empty if absent); the same object on every call."""
        if key not in self._children:
            value = self.raw(key, {})
            if not isinstance(value, dict):
                raise self.error(key, f"expected a table, got {value!r}")
            self._children[key] = Section(value, self.file, f"{self.path + '.' if self.path else ''}{key}")
        return self._children[key]

    def tables(self, key: str, shape: str) -> list["Section"]:
        """An array of tables (``[[key]]``); ``shape`` names it in the error."""
        entries = self.raw(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self.error(key, f"expected an array of tables ({shape})")
        prefix = f"{self.path + '.' if self.path else ''}{key}"
        return [Section(entry, self.file, f"{prefix}[{index}]") for index, entry in enumerate(entries)]

    def finish(self) -> None:
        """Refuse keys nobody read, here and in every sub-table: a misspelt key is an error, not a silent default."""
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise self.error(unknown[0], "unknown key")
        for child in self._children.values():
            child.finish()


def read_toml(path: Path) -> Section:
    """A config file as a Section: a bounded regular file, UTF-8, valid TOML (protocol/files.py)."""
    try:
        return Section(read_toml_file(path), path, "")
    except UnreadableFile as error:
        raise ConfigError(str(error)) from None


T = typing.TypeVar("T")


def build_settings(section: Section, cls: type[T], **given: object) -> T:
    """The settings dataclass ``cls`` from a TOML table, field by field.

    A missing key takes the field's default; ``given`` supplies fields the table
    does not hold (a broker read from the same table, a sub-table read its own
    way). A value the dataclass itself refuses (``__post_init__`` raising
    ValueError) becomes a ConfigError naming the table: the parts keep their
    validation, the file keeps its one error line.
    """
    values: dict[str, object] = dict(given)
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name in given or not spec.init:
            continue
        if section.has(spec.name):
            values[spec.name] = read_field(section, cls, spec.name)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise section.error(spec.name, "missing")
    try:
        return cls(**values)
    except ValueError as error:
        raise ConfigError(f"{section.file}: [{section.path}] {error}") from None


def read_field(section: Section, cls: type, name: str, key: str | None = None) -> typing.Any:
    """Field ``name`` of ``cls`` as table key ``key`` (default: the field's name), or its default."""
    key = key or name
    spec = next(s for s in dataclasses.fields(cls) if s.name == name)
    if not section.has(key):
        section.read.add(key)
        if spec.default is not dataclasses.MISSING:
            return spec.default
        if spec.default_factory is not dataclasses.MISSING:
            return spec.default_factory()
        raise section.error(key, "missing")
    return _typed_value(section, key, typing.get_type_hints(cls)[name], spec)


def _typed_value(section: Section, key: str, hint: object, spec: dataclasses.Field) -> object:
    options = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(section.data.get(key), dict):
            return build_settings(section.table(key), option)  # type: ignore[arg-type]
    value = section.raw(key)
    if value == "" and str in options:  # an empty text: not set, where the field may be unset; else a mistake
        if type(None) in typing.get_args(hint):
            return None
        raise section.error(key, "must not be empty")
    for option in options:
        if _matches(value, option):
            return _converted(section, key, value, option, spec)
    bounds = range_of(spec)
    expected = " or ".join(_describe(o) for o in options) + (f" {bounds}" if bounds else "")
    raise section.error(key, f"expected {expected}, got {value!r}")


def _converted(section: Section, key: str, value: typing.Any, option: object, spec: dataclasses.Field) -> object:
    """A value of the right TOML type, checked against the field's bounds and made the field's type."""
    bounds, choices = range_of(spec), choices_of(spec)
    if bounds is not None and value not in bounds:
        raise section.error(key, f"{float(value) if option is float else value} is outside {bounds}")
    if choices and value not in choices:
        raise section.error(key, f"{value!r} is not one of {', '.join(choices)}")
    if isinstance(option, type) and issubclass(option, enum.Enum):
        members = [m.value for m in option]
        if value not in members:
            raise section.error(key, f"{value!r} is not one of {', '.join(members)}")
        return option(value)
    if option is Path:
        if not value:
            raise section.error(key, "must not be empty")
        return Path(value) if Path(value).is_absolute() else section.file.parent / value
    if option is ZoneInfo:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise section.error(key, f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
    if typing.get_origin(option) is tuple:
        return tuple(value)
    return float(value) if option is float else value


def _is_union(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _matches(value: object, option: object) -> bool:
    if option is bool:
        return isinstance(value, bool)
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if option is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if option in (str, Path, ZoneInfo) or isinstance(option, type) and issubclass(option, enum.Enum):
        return isinstance(value, str)
    if typing.get_origin(option) is tuple:
        items = typing.get_args(option)
        item_type = items[0] if items else object
        return isinstance(value, list) and all(item_type is object or _matches(v, item_type) for v in value)
    return False


def _describe(option: object) -> str:
    if typing.get_origin(option) is tuple:
        return "an array"
    if dataclasses.is_dataclass(option):
        return "a table"
    if isinstance(option, type) and issubclass(option, enum.Enum):
        return "one of " + ", ".join(m.value for m in option)
    names: dict[object, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a string", ZoneInfo: "a string"}
    return names.get(option, str(option))
