"""The [realname] table of gate.toml as values: the ID check's readers, secret and timing.

The policy (which tickets need a check) is ``RealNamePolicy`` in GateRules, read by the
engine; these settings are what the ID check itself needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.scanner.base import DeviceScanner

from gate.idcard.sam import SamSettings
from gate.scanner.errors import SettingsError
from gate.scanner.settings import HidSettings, SerialSettings
from protocol.bounds import out_of_range, setting

IdReaderSettings = SamSettings | HidSettings | SerialSettings
ID_READER_KINDS = {"sam": SamSettings, "hid": HidSettings, "serial": SerialSettings}


@dataclass(frozen=True)
class IdCheckSettings:
    """``timeout_seconds``: how long the gate waits for an ID after asking for it.
    ``before_scan_seconds``: an ID read this long before the ticket still counts (visitors
    often lay the card first). ``retired_secrets``: the site's earlier secrets, still needed
    for tickets minted before the secret was rotated (docs/realname.md). No secret is ever
    shown in a repr."""

    readers: tuple[IdReaderSettings, ...]
    site_secret: bytes = field(repr=False)
    timeout_seconds: float = setting(30.0, low=1, high=600)
    before_scan_seconds: float = setting(5.0, low=0, high=60)
    retired_secrets: tuple[bytes, ...] = field(default=(), repr=False)  # earlier site secrets, for tickets minted before a rotation

    def __post_init__(self) -> None:
        if not self.readers:
            raise SettingsError("a gate that checks IDs needs at least one ID reader")
        problem = out_of_range(self)  # the bounds the loader checks gate.toml with, declared on the fields
        if problem is not None:
            raise SettingsError(problem)


def open_id_reader(settings: IdReaderSettings) -> DeviceScanner:
    """The reader for ``settings``: a SAM card reader, or a scanner class reused as it is."""
    if isinstance(settings, SamSettings):
        from gate.idcard.sam import SamCardReader

        return SamCardReader(settings)
    from gate.scanner.factory import open_scanner

    return open_scanner(settings)
