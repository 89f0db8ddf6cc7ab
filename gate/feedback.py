"""What the visitor is told: the message catalogue, keyed by decision reason.

The texts live in gate/messages.toml, not in code, so a translator or a
site can change them without touching the decision logic; the catalogue is
checked whole at load time, so a reason without a text is a start-up error,
not a blank screen at the gate.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from .decision import Reason

LANGUAGES = ("bo", "zh", "en")


class CatalogueError(Exception):
    """The message catalogue lacks a text; names the reason and language."""


@dataclass(frozen=True)
class VisitorMessage:
    bo: str
    zh: str
    en: str

    def lines(self) -> list[str]:
        return [self.bo, self.zh, self.en]


def load_catalogue(text: str | None = None) -> dict[Reason, VisitorMessage]:
    """Parse the catalogue (the packaged one by default) and check it covers every reason."""
    if text is None:
        text = resources.files("gate").joinpath("messages.toml").read_text(encoding="utf-8")
    document = tomllib.loads(text)
    catalogue = {}
    for reason in Reason:
        entry = document.get(reason.value)
        if not isinstance(entry, dict):
            raise CatalogueError(f"messages.toml: no [{reason.value}] table")
        for language in LANGUAGES:
            if not isinstance(entry.get(language), str) or not entry[language].strip():
                raise CatalogueError(f"messages.toml: [{reason.value}] has no '{language}' text")
        catalogue[reason] = VisitorMessage(entry["bo"], entry["zh"], entry["en"])
    return catalogue
