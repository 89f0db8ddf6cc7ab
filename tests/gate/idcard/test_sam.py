"""The SAM reader driver over a real pty against a reader that speaks the real framing."""

from __future__ import annotations

import threading

import pytest

from gate.idcard.sam import Command, FrameError, SamCardReader, SamSettings, command_frame, id_number_from_base_info
from gate.scanner.errors import SettingsError
from protocol.holder import resident_check_character
from testkit.fake_sam_reader import FakeSamReader, card_text
from testkit.ptys import RawPty

NUMBER = "54010219900101123" + resident_check_character("54010219900101123")
WAIT = 20.0


@pytest.fixture
def fake():
    reader = FakeSamReader()
    yield reader
    reader.close()


def _next_number(reader: SamCardReader, stop: threading.Event) -> str:
    for scan in reader.scans(stop):
        return scan.text
    raise AssertionError("reader stopped without a card")


def test_command_frames_have_the_documented_bytes():
    assert command_frame(Command.STATUS) == bytes.fromhex("aaaaaa9669 0003 11ff ed")
    assert command_frame(Command.FIND) == bytes.fromhex("aaaaaa9669 0003 2001 22")
    assert command_frame(Command.SELECT) == bytes.fromhex("aaaaaa9669 0003 2002 21")
    assert command_frame(Command.READ_BASE) == bytes.fromhex("aaaaaa9669 0003 3001 32")


def test_a_card_laid_on_the_reader_gives_its_number_once(fake):
    reader = SamCardReader(SamSettings(fake.device, poll_seconds=0.02, dedupe_seconds=60))
    stop = threading.Event()
    fake.place(NUMBER)
    seen = []
    thread = threading.Thread(target=lambda: seen.extend(reader.scans(stop)))
    thread.start()
    try:
        assert fake.wait_reads(4, WAIT)  # the card stays on the reader and is read again and again
    finally:
        stop.set()
        thread.join(WAIT)
        reader.close()
    assert [(s.text, s.source) for s in seen] == [(NUMBER, f"sam:{fake.device}")]


def test_residence_permits_and_foreigners_cards_give_their_numbers(fake):
    reader = SamCardReader(SamSettings(fake.device, poll_seconds=0.02))
    stop = threading.Event()
    try:
        fake.place("810000199001011234", card_type="J")
        assert _next_number(reader, stop) == "810000199001011234"
        assert id_number_from_base_info(bytes.fromhex("0100 0400") + card_text("USA110090010112", card_type="I") + bytes(1024)) == "USA110090010112"
        assert id_number_from_base_info(bytes.fromhex("0100 0400") + card_text("X", card_type="Y") + bytes(1024)) is None
    finally:
        stop.set()
        reader.close()


def test_a_garbled_reply_is_dropped_and_the_next_read_succeeds(fake):
    reader = SamCardReader(SamSettings(fake.device, poll_seconds=0.02))
    stop = threading.Event()
    fake.garble_next_read = True
    fake.place(NUMBER)
    try:
        assert _next_number(reader, stop) == NUMBER
        assert reader.health().rejected_count == 1
    finally:
        stop.set()
        reader.close()


def test_short_base_information_is_a_frame_error():
    with pytest.raises(FrameError, match="at least"):
        id_number_from_base_info(b"\x01\x00\x04\x00" + bytes(20))


def test_a_port_where_no_reader_answers_is_reported_at_open(fake, tmp_path):
    silent = RawPty()  # nothing answers on this one
    reader = SamCardReader(SamSettings(silent.port, response_timeout=0.1, reopen_backoff=0.05, reopen_backoff_max=0.05))
    stop = threading.Event()
    thread = threading.Thread(target=lambda: list(reader.scans(stop)))
    thread.start()
    try:
        health = reader.wait_for_health(lambda h: not h.ok and "not answering as an ID-card reader at 115200 baud" in h.detail, WAIT)
        assert health is not None, reader.health()
    finally:
        stop.set()
        thread.join(WAIT)
        reader.close()
        silent.close()


def test_bad_settings_name_the_field():
    with pytest.raises(SettingsError, match="sam.port"):
        SamSettings("")
    with pytest.raises(SettingsError, match="reopen_backoff"):
        SamSettings("/dev/ttyUSB0", reopen_backoff=5, reopen_backoff_max=1)
