"""Serial bytes to lines: noise, partial and over-long lines never reach the engine as a ticket."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gate.scanner.text_lines import LineAssembler

CODE = "LT1:6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N IOP-IA%NFQGRJPC%OQHIZC4.OI1RM8ZA.A5:S9MKN02/J"


def assembler(terminator: bytes = b"\r", max_line: int = 1024, partial_timeout: float = 0.5) -> LineAssembler:
    return LineAssembler(terminator, max_line, partial_timeout, "serial:test")


def test_a_code_split_across_reads_comes_out_whole_with_its_spaces() -> None:
    lines = assembler()
    assert lines.feed(CODE[:10].encode(), 0.00).texts == []
    assert lines.feed(CODE[10:].encode() + b"\r", 0.01).texts == [CODE]


def test_several_codes_in_one_read_all_come_out_in_order() -> None:
    lines = assembler(b"\n")
    assert lines.feed(b"LT1:A\nLT1:B\nLT1:C\n", 0.0).texts == ["LT1:A", "LT1:B", "LT1:C"]


def test_crlf_split_between_reads_is_one_terminator() -> None:
    lines = assembler(b"\r\n")
    assert lines.feed(b"LT1:A\r", 0.0).texts == []
    assert lines.feed(b"\nLT1:B\r\n", 0.01).texts == ["LT1:A", "LT1:B"]


def test_module_sending_crlf_reads_cleanly_when_configured_for_cr_or_lf() -> None:
    for terminator in (b"\r", b"\n"):
        lines = assembler(terminator)
        assert lines.feed(b"LT1:A\r\nLT1:B\r\n", 0.0).texts == ["LT1:A", "LT1:B"]


def test_line_with_noise_bytes_is_dropped_and_counted_and_the_next_line_is_clean() -> None:
    lines = assembler()
    fed = lines.feed(b"LT1:\x00\x1bGARBLED\r" + CODE.encode() + b"\r", 0.0)
    assert fed.texts == [CODE]
    assert fed.rejected == 1


def test_invalid_utf8_is_noise_but_valid_utf8_text_passes_unchanged() -> None:
    lines = assembler()
    assert lines.feed(b"\xff\xfe\xfd\r", 0.0).rejected == 1
    assert lines.feed("门票 ticket\r".encode(), 0.0).texts == ["门票 ticket"]


def test_fragment_left_without_terminator_is_dropped_when_the_next_code_comes_later() -> None:
    lines = assembler(partial_timeout=0.5)
    assert lines.feed(b"LT1:HALF-A-TIC", 10.0).texts == []
    fed = lines.feed(CODE.encode() + b"\r", 12.0)
    assert fed.texts == [CODE]  # not "LT1:HALF-A-TIC" + CODE
    assert fed.rejected == 1


def test_over_long_line_is_dropped_whole_without_growing_memory() -> None:
    lines = assembler(max_line=64)
    rejected = 0
    for chunk in range(100):  # 100 kB of a stuck module without terminator
        fed = lines.feed(b"A" * 1000, chunk * 0.01)
        rejected += fed.rejected
        assert fed.texts == []
        assert lines.pending <= 64
    fed = lines.feed(b"TAIL\rLT1:OK\r", 1.0)
    assert fed.texts == ["LT1:OK"]  # the tail of the long line is not a code
    assert rejected + fed.rejected == 1


def test_line_arriving_whole_but_too_long_is_dropped() -> None:
    lines = assembler(max_line=8)
    fed = lines.feed(b"LT1:TOO-LONG-FOR-THIS\rLT1:OK\r", 0.0)
    assert (fed.texts, fed.rejected) == (["LT1:OK"], 1)


def test_empty_lines_are_ignored_not_counted_as_noise() -> None:
    fed = assembler().feed(b"\r\r\n\rLT1:A\r", 0.0)
    assert (fed.texts, fed.rejected) == (["LT1:A"], 0)


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_any_byte_stream_keeps_memory_bounded_and_yields_only_printable_lines(chunks: list[bytes]) -> None:
    lines = assembler(b"\r\n", max_line=32)
    for index, chunk in enumerate(chunks):
        for text in lines.feed(chunk, index * 0.01).texts:
            assert text and text.isprintable() and len(text.encode()) <= 32
        assert lines.pending <= 32 + 1 + 40
