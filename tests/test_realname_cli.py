"""`lungta ticket secret` and `lungta ticket issue --holder`: real processes, real files."""

from __future__ import annotations

import json
import re

from protocol.holder import bind_holder, read_site_secret
from protocol.ticket import read_ticket
from tests.test_cli import issue, keys, lungta  # noqa: F401  (keys is a fixture)

HOLDER = "540102199001011233"


def test_issued_real_name_ticket_carries_a_binding_the_site_secret_reproduces(keys, tmp_path):
    secret = tmp_path / "holder.secret"
    created = lungta("ticket", "secret", "--out", str(secret))
    assert created.returncode == 0 and json.loads(created.stdout) == {"secret_file": str(secret)}
    text = issue(keys, "--holder", "5401 0219 9001 0112 33", "--holder-secret", str(secret))
    claims = read_ticket(text).claims
    assert claims.holder_hash is None
    assert claims.holder_binding == bind_holder(claims.ticket_id, HOLDER, read_site_secret(secret))
    inspected = json.loads(lungta("ticket", "inspect", text).stdout)
    assert inspected["claims"]["holder_binding"].startswith("v1:") and HOLDER not in json.dumps(inspected)


def test_holder_without_secret_or_with_a_mistyped_id_is_one_clear_line(keys, tmp_path):
    base = ["ticket", "issue", "--key", str(keys / "sales.key"), "--site", "potala"]
    missing = lungta(*base, "--holder", HOLDER)
    assert missing.returncode != 0 and "--holder-secret" in missing.stderr and "Traceback" not in missing.stderr
    lungta("ticket", "secret", "--out", str(tmp_path / "s"))
    typo = lungta(*base, "--holder", "540102199001011234", "--holder-secret", str(tmp_path / "s"))
    assert typo.returncode != 0 and "check character" in typo.stderr and "540102199001011234" not in typo.stderr
    again = lungta("ticket", "secret", "--out", str(tmp_path / "s"))
    assert again.returncode != 0 and "never overwritten" in again.stderr


FULL_CLAIMS = ("--type", "group", "--persons", "8", "--entries", "2", "--entries-per-day", "1", "--slot", "09:00-10:00", "--zone", "red-palace", "--reentry")


def test_a_long_name_is_masked_to_four_characters_and_the_ticket_stays_within_qr_10_m(keys, tmp_path):
    from protocol.qr import ticket_qr

    lungta("ticket", "secret", "--out", str(tmp_path / "s"))
    base = ["ticket", "issue", "--key", str(keys / "sales.key"), "--site", "potala", "--holder", HOLDER, "--holder-secret", str(tmp_path / "s"), *FULL_CLAIMS]
    for name, masked in (("扎西次仁", "扎**仁"), ("བཀྲ་ཤིས་ཚེ་རིང་", "བ**་"), ("MUHAMMAD ABDULLAH AL-RASHID BIN KHALID", "M**D"), ("张三", "张*")):
        result = lungta(*base, "--holder-name", name)
        assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
        text = result.stdout.strip()
        assert read_ticket(text).claims.holder_name == masked
        assert ticket_qr(text).version <= 10, (name, len(text))


def test_a_real_name_ticket_past_qr_10_m_is_minted_with_a_warning_naming_what_to_leave_out(keys, tmp_path):
    lungta("ticket", "secret", "--out", str(tmp_path / "s"))
    base = ["ticket", "issue", "--key", str(keys / "sales.key"), "--site", "potala", *FULL_CLAIMS, "--holder-name", "扎西次仁", "--issuer", "potala-ticket-office-main-counter"]
    plain = lungta(*base)
    assert plain.returncode == 0 and "warning" not in plain.stderr  # not a real-name ticket: no 10-M promise
    real_name = lungta(*base, "--holder", HOLDER, "--holder-secret", str(tmp_path / "s"))
    assert real_name.returncode == 0 and read_ticket(real_name.stdout.strip()).claims.holder_binding is not None
    version = re.search(r"QR version (\d+)-M", real_name.stderr)
    assert version and int(version.group(1)) > 10 and "--issuer" in real_name.stderr, real_name.stderr
