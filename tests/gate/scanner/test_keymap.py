"""Keyboard-wedge key events back to text, fed as real evdev InputEvent sequences."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator

import pytest
from evdev import InputEvent, ecodes

from gate.scanner.keymap import KeyMapper, key_codes

BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
DOWN, UP, HOLD = 1, 0, 2

# An independent oracle: how a US-layout keyboard types each character (key name, with Shift).
US_TYPING: dict[str, tuple[str, bool]] = {
    **{letter: (f"KEY_{letter.upper()}", False) for letter in string.ascii_lowercase},
    **{letter: (f"KEY_{letter}", True) for letter in string.ascii_uppercase},
    **{digit: (f"KEY_{digit}", False) for digit in string.digits},
    **dict(zip("!@#$%^&*()", ((f"KEY_{digit}", True) for digit in "1234567890"), strict=True)),
    " ": ("KEY_SPACE", False), "-": ("KEY_MINUS", False), "_": ("KEY_MINUS", True),
    "=": ("KEY_EQUAL", False), "+": ("KEY_EQUAL", True), "[": ("KEY_LEFTBRACE", False),
    "{": ("KEY_LEFTBRACE", True), "]": ("KEY_RIGHTBRACE", False), "}": ("KEY_RIGHTBRACE", True),
    "\\": ("KEY_BACKSLASH", False), "|": ("KEY_BACKSLASH", True), ";": ("KEY_SEMICOLON", False),
    ":": ("KEY_SEMICOLON", True), "'": ("KEY_APOSTROPHE", False), '"': ("KEY_APOSTROPHE", True),
    "`": ("KEY_GRAVE", False), "~": ("KEY_GRAVE", True), ",": ("KEY_COMMA", False),
    "<": ("KEY_COMMA", True), ".": ("KEY_DOT", False), ">": ("KEY_DOT", True),
    "/": ("KEY_SLASH", False), "?": ("KEY_SLASH", True),
}


class Keyboard:
    """Makes the event stream a scanner's USB keyboard produces, with kernel-like timestamps."""

    def __init__(self, start: float = 1000.0, step: float = 0.002) -> None:
        self.now = start
        self.step = step

    def event(self, type_: int, code: int, value: int) -> InputEvent:
        self.now += self.step
        sec = int(self.now)
        return InputEvent(sec, int(round((self.now - sec) * 1e6)), type_, code, value)

    def key(self, name: str, value: int) -> list[InputEvent]:
        # A real device sends the scan code (EV_MSC) before the key and a SYN report after it.
        return [self.event(ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000), self.event(ecodes.EV_KEY, ecodes.ecodes[name], value), self.event(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)]

    def tap(self, name: str) -> list[InputEvent]:
        return self.key(name, DOWN) + self.key(name, UP)

    def type(self, text: str, end: str = "KEY_ENTER") -> list[InputEvent]:
        events: list[InputEvent] = []
        for char in text:
            name, shifted = US_TYPING[char]
            if shifted:
                events += self.key("KEY_LEFTSHIFT", DOWN)
            events += self.tap(name)
            if shifted:
                events += self.key("KEY_LEFTSHIFT", UP)
        return events + self.tap(end)


def codes(mapper: KeyMapper, events: Iterable[InputEvent]) -> list[str]:
    return [text for text in (mapper.feed(event) for event in events) if text is not None]


def test_whole_base45_alphabet_typed_with_shift_comes_back_exactly() -> None:
    assert codes(KeyMapper(), Keyboard().type(BASE45)) == [BASE45]


def test_every_printable_us_ascii_character_comes_back_exactly() -> None:
    printable = "".join(sorted(US_TYPING))
    assert codes(KeyMapper(), Keyboard().type(printable)) == [printable]


def test_a_real_ticket_typed_by_a_wedge_scanner_is_the_ticket_text(tickets: list[str]) -> None:
    keyboard = Keyboard()
    events = keyboard.type(tickets[0]) + keyboard.type(tickets[1], end="KEY_KPENTER")
    assert codes(KeyMapper(), events) == tickets[:2]


def test_shift_held_across_several_keys_and_released_mid_code() -> None:
    kb = Keyboard()
    events = kb.key("KEY_RIGHTSHIFT", DOWN) + kb.tap("KEY_L") + kb.tap("KEY_T") + kb.tap("KEY_SEMICOLON")
    events += kb.key("KEY_RIGHTSHIFT", UP) + kb.tap("KEY_A") + kb.tap("KEY_SLASH") + kb.tap("KEY_ENTER")
    assert codes(KeyMapper(), events) == ["LT:a/"]


def test_autorepeat_and_key_up_add_no_characters() -> None:
    kb = Keyboard()
    events = kb.key("KEY_A", DOWN) + kb.key("KEY_A", HOLD) + kb.key("KEY_A", HOLD) + kb.key("KEY_A", UP) + kb.tap("KEY_ENTER")
    assert codes(KeyMapper(), events) == ["a"]


def test_caps_lock_toggles_letters_only() -> None:
    kb = Keyboard()
    events = kb.tap("KEY_CAPSLOCK") + kb.tap("KEY_A") + kb.tap("KEY_1") + kb.key("KEY_LEFTSHIFT", DOWN) + kb.tap("KEY_B")
    events += kb.key("KEY_LEFTSHIFT", UP) + kb.tap("KEY_CAPSLOCK") + kb.tap("KEY_C") + kb.tap("KEY_ENTER")
    assert codes(KeyMapper(), events) == ["A1bc"]


def test_keypad_digits_and_operators_type_the_same_with_or_without_shift() -> None:
    kb = Keyboard()
    events = [e for name in ("KEY_KP4", "KEY_KP5", "KEY_KPASTERISK", "KEY_KPPLUS", "KEY_KPMINUS", "KEY_KPDOT", "KEY_KPSLASH") for e in kb.tap(name)]
    events += kb.key("KEY_LEFTSHIFT", DOWN) + kb.tap("KEY_KP0") + kb.key("KEY_LEFTSHIFT", UP) + kb.tap("KEY_KPENTER")
    assert codes(KeyMapper(), events) == ["45*+-./0"]


def test_keys_without_a_character_and_ctrl_chords_are_skipped() -> None:
    kb = Keyboard()
    events = kb.tap("KEY_F1") + kb.tap("KEY_L") + kb.tap("KEY_TAB") + kb.tap("KEY_ESC")
    events += kb.key("KEY_LEFTCTRL", DOWN) + kb.tap("KEY_J") + kb.key("KEY_LEFTCTRL", UP) + kb.tap("KEY_T") + kb.tap("KEY_ENTER")
    assert codes(KeyMapper(), events) == ["lt"]


def test_enter_alone_yields_no_code() -> None:
    kb = Keyboard()
    assert codes(KeyMapper(), kb.tap("KEY_ENTER") + kb.tap("KEY_KPENTER")) == []


def test_configured_end_key_ends_a_code() -> None:
    kb = Keyboard()
    mapper = KeyMapper(end_keys=key_codes(["KEY_TAB"]))
    assert codes(mapper, kb.type("LT1:X", end="KEY_TAB")) == ["LT1:X"]


def test_over_long_code_is_dropped_and_the_next_one_reads() -> None:
    kb = Keyboard(step=0.0001)
    mapper = KeyMapper(max_length=50)
    assert codes(mapper, kb.type("A" * 500) + kb.type("LT1:OK")) == ["LT1:OK"]
    assert mapper.rejected == 1


def test_characters_left_without_enter_are_dropped_when_typing_resumes_later() -> None:
    kb = Keyboard()
    mapper = KeyMapper(partial_timeout=0.5)
    events = kb.type("LT1:CUT-OFF")[:-6]  # cable pulled before Enter
    kb.now += 3.0
    assert codes(mapper, events + kb.type("LT1:NEXT")) == ["LT1:NEXT"]
    assert mapper.rejected == 1


def test_unknown_end_key_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="KEY_NOPE"):
        key_codes(["KEY_NOPE"])


def _all_events(keyboard: Keyboard, texts: list[str]) -> Iterator[InputEvent]:
    for text in texts:
        yield from keyboard.type(text)


def test_a_thousand_codes_in_a_row_each_come_back() -> None:
    texts = [f"LT1:{index:04d} ${index % 7}" for index in range(1000)]
    assert codes(KeyMapper(), _all_events(Keyboard(), texts)) == texts
