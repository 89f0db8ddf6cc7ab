"""`lungta ticket secret` and `lungta ticket issue --holder`: real processes, real files."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

from protocol.holder import bind_holder, read_site_secret, resident_check_character
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


class OperatorTerminal:
    """The handheld's terminal as a real pty: reads what the CLI shows, types answers."""

    def __init__(self) -> None:
        from testkit.ptys import RawPty

        self.pty = RawPty()
        self.shown = b""

    def wait_for(self, text: str, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.shown.decode("utf-8", "replace").count(text) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, self.shown.decode("utf-8", "replace")
            ready, _, _ = select.select([self.pty.master], [], [], remaining)
            if ready:
                self.shown += os.read(self.pty.master, 4096)

    def type(self, line: str) -> None:
        self.pty.write(line.encode() + b"\r")


def test_the_handheld_cli_asks_for_the_id_on_its_terminal_and_decides_with_it(keys, tmp_path):
    OTHER = "11010519491231002" + resident_check_character("11010519491231002")
    secret = tmp_path / "s"
    lungta("ticket", "secret", "--out", str(secret))
    holder_args = ["--holder", HOLDER, "--holder-secret", str(secret), "--holder-name", "扎西次仁"]
    tickets = [issue(keys, *holder_args) for _ in range(3)] + [issue(keys)]
    terminal = OperatorTerminal()
    command = [sys.executable, "-m", "lungta", "gate", "validate", "--trust", str(keys / "sales.pub"), "--site", "potala", "--state", str(tmp_path / "state"),
               "--realname-check", "required", "--holder-secret", str(secret), "--id-terminal", terminal.pty.port, *tickets]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        prompt = "type the holder's ID number (not shown), Enter: "
        terminal.wait_for(prompt, 1)
        assert "扎**仁" in terminal.shown.decode()  # staff compare the masked name with the card
        terminal.type("5401 0219 9001 0112 33")  # as printed on the card
        terminal.wait_for(prompt, 2)
        terminal.type(OTHER)
        terminal.wait_for(prompt, 3)
        terminal.type(HOLDER[:-1] + "4")  # one digit mistyped: asked again, not "does not match"
        terminal.wait_for("type it again", 1)
        terminal.wait_for(prompt, 4)
        terminal.type("")  # the visitor has no ID with them
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        terminal.pty.close()
    assert process.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["decision"], r["reason"]) for r in records] == [
        ("grant", "valid"), ("deny", "holder_mismatch"), ("deny", "holder_check_required"), ("grant", "valid")]
    assert "no ID typed" in records[2]["detail"]
    assert terminal.shown.decode().count(prompt) == 4  # the plain ticket asked for nothing
    stored = b"".join(path.read_bytes() for path in (tmp_path / "state").rglob("*") if path.is_file())
    for number in (HOLDER, OTHER, HOLDER[:-1] + "4", "5401 0219"):
        assert number not in out + err and number.encode() not in stored and number not in terminal.shown.decode()  # not echoed either
    validate = lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", "potala", tickets[0])
    assert json.loads(validate.stdout)["reason"] == "valid"  # without --realname-check: as a gate with check = "off"


def test_the_handheld_cli_refuses_an_id_check_it_cannot_do_in_one_line(keys, tmp_path):
    base = ["gate", "validate", "--trust", str(keys / "sales.pub"), "--site", "potala", "--realname-check", "required"]
    no_secret = lungta(*base, "LT1:X")
    assert no_secret.returncode == 2 and "--holder-secret" in no_secret.stderr and "Traceback" not in no_secret.stderr
    lungta("ticket", "secret", "--out", str(tmp_path / "s"))
    no_terminal = lungta(*base, "--holder-secret", str(tmp_path / "s"), "--id-terminal", str(tmp_path / "tty-missing"), "LT1:X")
    assert no_terminal.returncode == 2 and "--id-terminal" in no_terminal.stderr and "Traceback" not in no_terminal.stderr
    no_types = lungta(*base[:-1], "types", "--holder-secret", str(tmp_path / "s"), "LT1:X")
    assert no_types.returncode == 2 and "--realname-type" in no_types.stderr
