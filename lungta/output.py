"""JSON lines on stdout: the one output format for programs and people alike."""

from __future__ import annotations

import json
import sys


def emit(record: object) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()
