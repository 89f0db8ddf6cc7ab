"""The hub log under systemd: each line carries its level, so ``journalctl -p warning`` shows the gates that dropped."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from lungta.journal import JournalFormatter, is_journal
from testkit.waiting import wait_until
from tests.hub.console.conftest import console_config


def test_a_multi_line_record_keeps_its_level_on_every_line() -> None:
    record = logging.LogRecord("hub", logging.WARNING, __file__, 1, "first\nsecond", None, None)
    assert JournalFormatter().format(record).split("\n") == ["<4>WARNING hub: first", "<4>second"]


def test_only_the_stream_systemd_connected_counts_as_the_journal(tmp_path) -> None:
    with (tmp_path / "stderr").open("w") as stream:
        found = os.fstat(stream.fileno())
        assert is_journal(stream, {"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"})
        assert not is_journal(stream, {"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino + 1}"}), "inherited by a child whose stderr was redirected"
        assert not is_journal(stream, {})


def test_hub_run_under_systemd_writes_priority_prefixed_lines(tmp_path, broker, hub_key) -> None:
    config = console_config(tmp_path / "hub", broker, hub_key)
    log_path = tmp_path / "journal"
    with log_path.open("w") as stream:
        found = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"}
        hub = subprocess.Popen([sys.executable, "-m", "lungta", "hub", "run", "--config", str(config)], stderr=stream, stdout=subprocess.DEVNULL, env=env)
        try:
            line = wait_until(lambda: next((text for text in log_path.read_text(encoding="utf-8").splitlines() if "console listening on" in text), None),
                              "the hub's console start line")
        finally:
            hub.terminate()
            hub.wait(30)
    assert line.startswith("<6>INFO hub.console.server: console listening on http://127.0.0.1:"), line
    assert all(text.startswith("<") for text in log_path.read_text(encoding="utf-8").splitlines()), "every line has its priority"
