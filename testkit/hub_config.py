"""A hub.toml for a :class:`testkit.broker.Broker`: what tests, benchmarks and fault runs start a hub from."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from protocol.keys import write_key_pair
from testkit.broker import Broker


def write_hub_config(directory: Path, broker: Broker, key: SigningKey, **hub_options: object) -> Path:
    """Write ``directory``/hub.toml (its key pair and broker password beside it); ``hub_options``
    are extra [hub] keys. The key pair is written once, so a restarted hub keeps its identity."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "keys" / "hub.key").exists():
        write_key_pair(key, directory / "keys", "hub")
    (directory / "broker-password").write_text(broker.password(broker.hub_user) + "\n", encoding="utf-8")
    options = "".join(f"{name} = {value!r}\n".replace("'", '"') for name, value in hub_options.items())
    text = f"""[hub]
site = "{broker.site}"
key = "keys/hub.key"
database = "hub.db"
{options}
[broker]
host = "{broker.host}"
port = {broker.port}
username = "{broker.hub_user}"
password_file = "broker-password"
"""
    path = directory / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path
