"""Key events of a keyboard-wedge scanner back to the text it typed.

A wedge scanner "types" each code on a US keyboard layout and presses Enter.
This mapping is pure (evdev InputEvents in, finished codes out), so it is
tested by feeding real event sequences; the device wrapper in hid.py is
thin. It covers the whole base45 alphabet of tickets ("0-9A-Z $%*+-./:")
and the rest of printable US ASCII, upper and lower case.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from evdev import InputEvent, ecodes

log = logging.getLogger(__name__)

KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2
DEFAULT_END_KEYS = (ecodes.KEY_ENTER, ecodes.KEY_KPENTER)
SHIFT_KEYS = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT})
# Chords with these are commands, not characters (some scanners send Ctrl+J as a suffix).
COMMAND_KEYS = frozenset({ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL, ecodes.KEY_LEFTALT, ecodes.KEY_RIGHTALT, ecodes.KEY_LEFTMETA, ecodes.KEY_RIGHTMETA})


def _us_layout() -> dict[int, tuple[str, str]]:
    """Key code -> (character, character with Shift) on a US keyboard."""
    layout = {ecodes.ecodes[f"KEY_{letter}"]: (letter.lower(), letter) for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    layout.update({ecodes.ecodes[f"KEY_{digit}"]: (digit, shifted) for digit, shifted in zip("1234567890", "!@#$%^&*()", strict=True)})
    symbols = {
        "KEY_SPACE": (" ", " "),
        "KEY_MINUS": ("-", "_"),
        "KEY_EQUAL": ("=", "+"),
        "KEY_LEFTBRACE": ("[", "{"),
        "KEY_RIGHTBRACE": ("]", "}"),
        "KEY_BACKSLASH": ("\\", "|"),
        "KEY_SEMICOLON": (";", ":"),
        "KEY_APOSTROPHE": ("'", '"'),
        "KEY_GRAVE": ("`", "~"),
        "KEY_COMMA": (",", "<"),
        "KEY_DOT": (".", ">"),
        "KEY_SLASH": ("/", "?"),
    }
    layout.update({ecodes.ecodes[name]: chars for name, chars in symbols.items()})
    return layout


US_LAYOUT = _us_layout()
# The keypad types the same with or without Shift (scanners that use it assume Num Lock on).
KEYPAD = {ecodes.ecodes[f"KEY_KP{digit}"]: digit for digit in "0123456789"} | {
    ecodes.KEY_KPMINUS: "-",
    ecodes.KEY_KPPLUS: "+",
    ecodes.KEY_KPASTERISK: "*",
    ecodes.KEY_KPSLASH: "/",
    ecodes.KEY_KPDOT: ".",
}
LETTER_KEYS = frozenset(code for code, (plain, _) in US_LAYOUT.items() if plain.isalpha())


def key_codes(names: Iterable[str]) -> tuple[int, ...]:
    """evdev key names ("KEY_ENTER") to codes; ValueError names an unknown one."""
    codes = []
    for name in names:
        code = ecodes.ecodes.get(name)
        if not isinstance(code, int) or not name.startswith("KEY_"):
            raise ValueError(f"unknown key name {name!r} (expected an evdev name such as KEY_ENTER)")
        codes.append(code)
    return tuple(codes)


class KeyMapper:
    """Turns one device's key events into codes; single-threaded, one per device connection.

    Characters are typed on key down; key up and autorepeat (hold) add
    nothing, so a stuck key cannot flood a code. Shift is tracked per key,
    so Shift released mid-code is honoured, and Caps Lock toggles letters
    as on a real keyboard. Keys with no character are skipped (logged at
    debug): a wrong text is still refused later by its signature. A code
    longer than ``max_length``, or a fragment idle for ``partial_timeout``
    seconds of event time, is dropped and counted in ``rejected``.
    """

    def __init__(self, end_keys: Iterable[int] = DEFAULT_END_KEYS, max_length: int = 1024, partial_timeout: float = 0.5, name: str = "hid") -> None:
        self._end_keys = frozenset(end_keys)
        self._max_length = max_length
        self._partial_timeout = partial_timeout
        self._name = name
        self._held: set[int] = set()
        self._caps_lock = False
        self._typed: list[str] = []
        self._overflow = False
        self._last_key_at: float | None = None
        self.rejected = 0

    def feed(self, event: InputEvent) -> str | None:
        """The finished code when ``event`` ends one, else None."""
        if event.type != ecodes.EV_KEY:
            return None  # EV_SYN, EV_MSC scan codes, LEDs
        code, value = event.code, event.value
        if code in SHIFT_KEYS or code in COMMAND_KEYS:
            if value == KEY_DOWN:
                self._held.add(code)
            elif value == KEY_UP:
                self._held.discard(code)
            return None
        if value != KEY_DOWN:
            return None
        self._expire_fragment(event.timestamp())
        if code in self._end_keys:
            return self._finish()
        if code == ecodes.KEY_CAPSLOCK:
            self._caps_lock = not self._caps_lock
            return None
        self._type(code)
        return None

    def _type(self, code: int) -> None:
        if self._held & COMMAND_KEYS:
            log.debug("%s: ignored a key chord with Ctrl/Alt/Meta (key %d)", self._name, code)
            return
        char = self._character(code)
        if char is None:
            log.debug("%s: ignored key %s with no character", self._name, ecodes.KEY.get(code, code))
            return
        if len(self._typed) >= self._max_length:
            self._overflow = True  # keep nothing more: memory stays bounded until Enter
            return
        self._typed.append(char)

    def _character(self, code: int) -> str | None:
        if code in KEYPAD:
            return KEYPAD[code]
        chars = US_LAYOUT.get(code)
        if chars is None:
            return None
        shifted = bool(self._held & SHIFT_KEYS)
        if code in LETTER_KEYS and self._caps_lock:
            shifted = not shifted
        return chars[1] if shifted else chars[0]

    def _finish(self) -> str | None:
        text, overflow = "".join(self._typed), self._overflow
        self._typed.clear()
        self._overflow = False
        if overflow:
            log.warning("%s: dropped a code longer than %d characters: %r...", self._name, self._max_length, text[:16])
            self.rejected += 1
            return None
        return text or None

    def _expire_fragment(self, at: float) -> None:
        last, self._last_key_at = self._last_key_at, at
        if last is not None and at - last > self._partial_timeout and (self._typed or self._overflow):
            log.warning("%s: dropped %d characters typed without Enter: %r", self._name, len(self._typed), "".join(self._typed)[:16])
            self.rejected += 1
            self._typed.clear()
            self._overflow = False
