"""`lungta ticket secret` and `lungta ticket issue --holder`: real processes, real files."""

from __future__ import annotations

import json

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
