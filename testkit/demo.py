"""``make demo``: the whole system on this machine, narrated for a person.

A real Mosquitto with the site's ACL, the hub, and two gates built from
their gate.toml exactly as ``lungta gate run`` builds them: east-1 watches a
video of visitors holding up tickets (the camera path, real QR decoding),
west-2 has a serial scanner on a pty that the demo types into. Both drive
the sim turnstile. Between the two, the operator refunds a ticket with
``lungta hub revoke``, and a visitor tries to reuse a ticket at the other
gate. Everything goes to ./demo-out (keys, configs, state, logs, QR images),
so a second run starts clean.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from nacl.signing import SigningKey

from gate.cache.state import GateStore
from gate.daemon import GateDaemon
from gate.decision import Decision
from gate.feedback import VisitorMessage
from gate.sync.client import HubSync
from hub.console.server import ConsoleServer, start_for_service
from hub.service import HubService
from lungta.config import load_gate_config, load_hub_config
from lungta.gate_run import assembled_gate
from protocol.claims import TicketClaims, TicketType, TimeSlot
from protocol.keys import write_key_pair
from protocol.qr import write_ticket_png
from protocol.ticket import issue_ticket, new_ticket_id, read_ticket
from testkit.broker import Broker, free_port
from testkit.ptys import RawPty
from testkit.synthetic_frames import FrameConditions, camera_frame

OUT = Path("demo-out")
SITE = "potala"
GATES = ("east-1", "west-2")
WAIT = 60.0


class Narrator:
    """The display of a demo gate: one line per decision, the visitor's message in three languages.

    Visitors reach the gate in the order of ``queue``, so the n-th decision is the n-th visitor's.
    """

    def __init__(self, gate: str, queue: list[str]) -> None:
        self.gate, self.queue = gate, list(queue)

    def show(self, decision: Decision, message: VisitorMessage) -> None:
        who = self.queue.pop(0) if self.queue else "?"
        verdict = f"GRANT x{decision.persons}" if decision.granted else "DENY    "
        print(f"  [{self.gate}] {verdict} {who:24} {decision.reason.value:14} {message.en} | {message.zh} | {message.bo}")
        if decision.detail:
            print(f"  {'':42}{decision.detail}")


@dataclass(frozen=True)
class RunningGate:
    daemon: GateDaemon
    sync: HubSync
    store: GateStore
    visitors: int


def _ticket(key: SigningKey, now: int, **claims: object) -> str:
    base = dict(ticket_id=new_ticket_id(), site=SITE, not_before=now - 3600, expires=now + 8 * 3600, issued_at=now - 3600)
    base.update(claims)
    return issue_ticket(TicketClaims(**base), key)


def _video(path: Path, texts: list[str]) -> None:
    """Each visitor holds a ticket up for half a second, then steps through; 25 fps, 640x480."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    rng = np.random.default_rng(1)
    for text in [None, *texts]:
        frame = camera_frame(text, FrameConditions(tilt_degrees=12, phone_screen=text is not None and len(text) % 2 == 0), rng)
        empty = camera_frame(None, FrameConditions(), rng)
        for image in [frame] * 12 + [empty] * 40:
            writer.write(image)
    writer.release()


def _gate_toml(name: str, scanner: str) -> Path:
    path = OUT / name / "gate.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f"""# demo gate {name}; see systemd/gate.toml for every key
[gate]
site = "{SITE}"
id = "{name}"
state_dir = "state"
trust = "../keys/potala-sales.pub"

{scanner}
[turnstile]
kind = "sim"
[turnstile.sim]
output_path = "turnstile.jsonl"
passage_delay_seconds = 0.05

[hub]
host = "127.0.0.1"
port = {{port}}
password = "{name}-secret"
trust = "../hub/keys/hub.pub"
heartbeat_seconds = 1
""", encoding="utf-8")
    return path


def _wait_decisions(daemon: GateDaemon, count: int) -> None:
    """Until ``count`` visitors are decided and everyone admitted has walked through."""
    counters = daemon.counters
    with daemon.decided:
        if not daemon.decided.wait_for(lambda: counters.scans >= count and counters.admissions_done >= counters.grants, WAIT):
            raise SystemExit(f"demo: gate decided {counters.scans} of {count} visitors in {WAIT:.0f} s; see {OUT}/demo.log")


def _lungta(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "lungta", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    logging.basicConfig(filename=OUT / "demo.log", level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    issuer, rogue, hub_key = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    write_key_pair(issuer, OUT / "keys", "potala-sales")
    write_key_pair(hub_key, OUT / "hub" / "keys", "hub")
    now = int(time.time())
    adult = _ticket(issuer, now, slot=TimeSlot(0, 1440))
    refunded = _ticket(issuer, now)
    east_queue = {
        "adult, all-day slot": adult,
        "forged (unknown key)": _ticket(rogue, now),
        "family of four": _ticket(issuer, now, ticket_type=TicketType.GROUP, persons=4),
        "yesterday's ticket": _ticket(issuer, now, not_before=now - 2 * 86400, expires=now - 86400),
        "ticket for Jiuzhaigou": _ticket(issuer, now, site="jiuzhaigou"),
        "torn photocopy": "LT1:NOT A REAL TICKET",
    }
    west_queue = {"adult again, other gate": adult, "refunded ticket": refunded, "monk, free entry": _ticket(issuer, now, ticket_type=TicketType.RELIGIOUS)}
    for index, (who, text) in enumerate({**east_queue, **west_queue}.items(), 1):
        write_ticket_png(text, OUT / f"visitor-{index}.png")
    _video(OUT / "east-1-camera.avi", list(east_queue.values()))

    broker = Broker(OUT / "broker", SITE, list(GATES), hub_user=f"hub-{SITE}")
    broker.start()
    west_scanner = RawPty()
    configs = {
        "east-1": _gate_toml("east-1", '[[scanner]]\nkind = "camera"\nsource = "../east-1-camera.avi"\n'),
        "west-2": _gate_toml("west-2", f'[[scanner]]\nkind = "serial"\nport = "{west_scanner.port}"\n'),
    }
    for path in configs.values():
        path.write_text(path.read_text(encoding="utf-8").replace("{port}", str(broker.port)), encoding="utf-8")
    hub_toml = OUT / "hub" / "hub.toml"
    (OUT / "hub" / "broker-password").write_text(broker.password(broker.hub_user) + "\n", encoding="utf-8")
    hub_toml.write_text(f'[hub]\nsite = "{SITE}"\nkey = "keys/hub.key"\ndatabase = "hub.db"\nheartbeat_interval_s = 1\n\n'
                        f'[broker]\nport = {broker.port}\nusername = "{broker.hub_user}"\npassword_file = "broker-password"\n\n'
                        f'[http]\nlisten = "127.0.0.1:{_console_port()}"\n', encoding="utf-8")

    print(f"Lungta demo, site '{SITE}': Mosquitto on 127.0.0.1:{broker.port} with the site ACL, a hub, gates {' and '.join(GATES)}.")
    print(f"Configs, state, logs and the QR images are in {OUT}/.\n")
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(broker.stop)
        hub = HubService.from_config(load_hub_config(hub_toml))
        hub_thread = threading.Thread(target=hub.run, args=(stop,), name="hub")
        hub_thread.start()
        stack.callback(hub_thread.join)
        console = start_for_service(load_hub_config(hub_toml), hub)
        assert console is not None  # hub.toml has [http]
        stack.callback(console.stop)
        logins = _console_logins(hub_toml)
        running = {}
        for name, queue in (("east-1", east_queue), ("west-2", west_queue)):
            gate = stack.enter_context(assembled_gate(load_gate_config(configs[name]), Narrator(name, list(queue))))
            assert gate.sync is not None  # every demo gate.toml has [hub]
            runner = threading.Thread(target=gate.daemon.run, args=(stop,), name=f"gate {name}")
            runner.start()
            stack.callback(runner.join)
            running[name] = RunningGate(gate.daemon, gate.sync, gate.parts.store, len(queue))
        stack.callback(stop.set)  # runs first on the way out: everything above stops in reverse
        _narrate(hub, hub_toml, adult, refunded, west_queue, west_scanner, running["east-1"], running["west-2"])
        _show_console(console, logins, stop)
    west_scanner.close()
    print(f"\nTry: .venv/bin/lungta ticket inspect \"$(.venv/bin/lungta ticket issue --key {OUT}/keys/potala-sales.key --site {SITE})\"")


def _narrate(hub: HubService, hub_toml: Path, adult: str, refunded: str, west_queue: dict[str, str], west_scanner: RawPty, east: RunningGate, west: RunningGate) -> None:
    """The story: east-1's queue, a refund, the same ticket tried again at west-2, the hub's view."""
    print("Morning queue at east-1 (camera):")
    _wait_decisions(east.daemon, east.visitors)
    refund_id = read_ticket(refunded).claims.ticket_id.hex()
    print(f"\nThe operator refunds a ticket:  lungta hub revoke --config {hub_toml} {refund_id[:8]}... --reason refund")
    _lungta("hub", "revoke", "--config", str(hub_toml), refund_id, "--reason", "refund")
    adult_id = read_ticket(adult).claims.ticket_id
    west.sync.wait_for(lambda sync: sync.inbox.tracker.last("revocations") >= 1 and west.store.has_usage(adult_id), WAIT)
    print("  west-2 has the revocation, and the used marks of east-1's admissions.\n")
    print("Meanwhile at west-2 (serial scanner):")
    for text in west_queue.values():
        west_scanner.scan(text)
    _wait_decisions(west.daemon, west.visitors)
    for gate in (east, west):
        gate.sync.wait_for(lambda _: gate.store.backlog() == 0, WAIT)  # waits here, before the loop moves on
    reports = hub.stats.reports
    hub.wait_for(lambda stats: stats.reports >= reports + 2, WAIT)  # a fresh heartbeat of each gate
    print("\nEvery gate event is stored once at the hub, and the gates have pruned their outboxes:")
    print("  " + _lungta("hub", "gates", "--config", str(hub_toml)).replace("\n", "\n  ").rstrip())
    pulses = [json.loads(line) for line in (OUT / "east-1" / "turnstile.jsonl").read_text(encoding="utf-8").splitlines()]
    opened = sum(p["event"] == "relay" and p.get("on") is True for p in pulses)
    print(f"\nThe east-1 turnstile (sim) opened {opened} times, once per person: 1 adult + 4 for the family ({OUT}/east-1/turnstile.jsonl).")


# ---- the operator console ----

CONSOLE_PORT = 8080


def _console_port() -> int:
    """8080 when it is free (the URL docs/console.md shows), else any free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", CONSOLE_PORT))
        except OSError:
            return free_port()
    return CONSOLE_PORT


def _console_logins(hub_toml: Path) -> dict[str, str]:
    """A viewer and an operator account, made with the CLI an operator uses; name -> password."""
    logins = {"viewer": "viewer-" + secrets.token_hex(4), "operator": "operator-" + secrets.token_hex(4)}
    for role, password in logins.items():
        subprocess.run([sys.executable, "-m", "lungta", "hub", "user", "add", "--config", str(hub_toml), "--role", role, role],
                       input=password + "\n", check=True, capture_output=True, text=True)
    return logins


def _show_console(console: ConsoleServer, logins: dict[str, str], stop: threading.Event) -> None:
    """Print the dashboard's URL and logins; in a terminal, keep serving until Ctrl-C."""
    request = urllib.request.Request(console.url + "api/v1/login", json.dumps({"name": "viewer", "password": logins["viewer"]}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        token = json.loads(answer.read())["token"]
    with urllib.request.urlopen(urllib.request.Request(console.url + "api/v1/gates", headers={"Authorization": f"Bearer {token}"}), timeout=WAIT) as answer:
        online = sum(gate["status"] == "online" for gate in json.loads(answer.read())["items"])
    print(f"\nThe operator console: {console.url}  (it shows {online} gates online)")
    print(f"  viewer login:   viewer / {logins['viewer']}")
    print(f"  operator login: operator / {logins['operator']}  (may revoke, set quotas, open gates)")
    if sys.stdin.isatty():
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a background job's child)
        print("Serving the dashboard until you press Ctrl-C.")
        try:
            stop.wait()
        except KeyboardInterrupt:
            print()


if __name__ == "__main__":
    main()
