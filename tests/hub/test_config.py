"""hub.toml: every problem reported at once, one line each, naming the file and the key."""

from __future__ import annotations

import pytest

from hub.config import ConfigError, load_config


def write(tmp_path, text: str):
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_resolves_paths_relative_to_the_file(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    config = load_config(write(tmp_path, '[hub]\nsite = "potala"\nkey = "k/hub.key"\ndatabase = "hub.db"\n[broker]\nport = 8883\nusername = "hub-potala"\npassword_file = "pw"\ncafile = "ca.pem"\n'))
    assert config.key == tmp_path / "k/hub.key" and config.database == tmp_path / "hub.db"
    assert (config.broker.password, config.broker.port, config.broker.tls, config.broker.client_id) == ("s3cret", 8883, True, "lungta-hub-potala")
    assert config.synchronous == "full"


def test_every_error_is_one_line_naming_file_and_key(tmp_path):
    path = write(tmp_path, '[hub]\nsite = "po/tala"\ndatabase = 3\nsynchronous = "maybe"\ncolour = "red"\n[broker]\nport = 70000\npassword = "x"\n[extra]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    keys = [line.split(": ")[1] for line in lines]
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert set(keys) == {"extra", "hub.colour", "hub.site", "hub.synchronous", "broker.port", "broker.username", "hub.key", "hub.database"}


def test_missing_hub_table_and_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match=r"\[hub\]: missing table"):
        load_config(write(tmp_path, "[broker]\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
