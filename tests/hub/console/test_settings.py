"""hub.toml [http]: read with every other key, a wrong value is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungta.config import ConfigError, load_hub_config

BASE = '[hub]\nsite = "potala"\nkey = "k"\ndatabase = "hub.db"\n[broker]\nport = 8883\n'


def _load(tmp_path: Path, http: str):
    path = tmp_path / "hub.toml"
    path.write_text(BASE + http, encoding="utf-8")
    return load_hub_config(path)


def test_without_http_there_is_no_console_and_with_it_paths_are_relative_to_hub_toml(tmp_path: Path) -> None:
    assert _load(tmp_path, "").http is None
    settings = _load(tmp_path, '[http]\nlisten = ":9000"\ntls_cert = "tls/c.pem"\ntls_key = "tls/c.key"\noffline_alert_s = 5\n').http
    assert settings.address == ("0.0.0.0", 9000) and settings.tls_cert == str(tmp_path / "tls/c.pem") and settings.offline_alert_s == 5.0


@pytest.mark.parametrize("http, named", [
    ('[http]\nlisten = "localhost"\n', "listen"),
    ('[http]\nlisten = "127.0.0.1:99999"\n', "listen"),
    ('[http]\ntls_cert = "c.pem"\n', "tls_key"),
    ('[http]\nlisten = 8080\n', "http.listen"),
    ('[http]\nlisen = "127.0.0.1:8080"\n', "http.lisen"),
    ('[http]\nsession_hours = 0\n', "session_hours"),
])
def test_a_wrong_http_value_is_one_line_naming_the_key(tmp_path: Path, http: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, http)
    message = str(caught.value)
    assert "\n" not in message and "hub.toml" in message and named in message, message
