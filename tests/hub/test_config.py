"""hub.toml: read by lungta.config like gate.toml; each mistake is one line naming the key and the file."""

from __future__ import annotations

import pytest

from lungta.config import ConfigError, load_hub_config

GOOD = '[hub]\nsite = "potala"\nkey = "k/hub.key"\ndatabase = "hub.db"\n[broker]\nport = 8883\nusername = "hub-potala"\npassword_file = "pw"\ncafile = "ca.pem"\n'


def write(tmp_path, text: str):
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_resolves_paths_relative_to_the_file(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    config = load_hub_config(write(tmp_path, GOOD))
    assert config.key == tmp_path / "k/hub.key" and config.database == tmp_path / "hub.db"
    assert (config.broker.password, config.broker.port, config.broker.tls, config.broker.client_id) == ("s3cret", 8883, True, "lungta-hub-potala")
    assert config.synchronous == "full" and config.timezone.key == "Asia/Shanghai"


@pytest.mark.parametrize(
    "change, complaint",
    [
        (('site = "potala"', 'site = "po/tala"'), "hub.site: site 'po/tala' must be 1-64 letters"),
        (('database = "hub.db"', "database = 3"), "hub.database: expected a string"),
        (('database = "hub.db"', 'database = "hub.db"\nsynchronous = "maybe"'), "hub.synchronous: 'maybe' is not one of full, normal"),
        (('database = "hub.db"', 'database = "hub.db"\ncolour = "red"'), "hub.colour: unknown key"),
        (("port = 8883", "port = 70000"), "broker.port: 70000 is outside 1..65535"),
        (('username = "hub-potala"\n', ""), "broker.username: required when a password is given"),
        (('cafile = "ca.pem"', 'certfile = "hub.pem"'), "broker.certfile: certfile and keyfile go together"),
        (('key = "k/hub.key"\n', ""), "hub.key: missing"),
        (("[broker]", "[extra]\n[broker]"), "extra: unknown key"),
    ],
)
def test_each_mistake_is_one_line_naming_key_and_file(tmp_path, change, complaint):
    (tmp_path / "pw").write_text("s3cret\n")
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_hub_config(path)
    message = str(caught.value)
    assert complaint in message and str(path) in message and "\n" not in message


def test_missing_hub_table_and_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match=r"\[hub\]: missing table"):
        load_hub_config(write(tmp_path, "[broker]\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_hub_config(tmp_path / "absent.toml")
