"""The operator console under load: gate event to dashboard, and what dashboards cost the hub.

Run: .venv/bin/python -m bench.bench_console [--gates 300] [--rounds 2] [--seconds 15]

Everything real but the gates: Mosquitto with the site ACL, the hub in its
own process with its console (hub.toml [http]), simulated gates (SimGate, in
worker processes) that speak the gate protocol, each sending one admission a
second and a heartbeat every 10 s.

1. Latency to the browser: the dashboard open in Debian's chromium
   (Playwright), logged in; a probe gate admits a visitor every second; the
   page records when each admission is on screen (the animation frame after
   its snapshot arrived). Latency = that moment - the admission's time at the
   gate (same machine, same clock). Goal p95 < 2 s with 300 gates. The bare
   limit in the same run: the same admissions' relay to another gate (gate ->
   hub commit -> signed used mark verified), which every update must pass too.
2. Cost: the same gates at 1 scan/s, with the console off (the bare limit),
   on with no dashboard, and on with 5 dashboards (SSE clients in another
   process that parse every snapshot as a browser does), interleaved in
   rounds. Measured: the hub process's CPU seconds per 1,000 events stored
   (its capacity is the inverse: on a shared machine the CPU a process uses
   per event is stable where latencies are not), and the relay latency (an
   admission at a gate until another gate has verified the used mark the hub
   relays). Goal: 5 dashboards cost < 10% of the hub's capacity.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from hub.console.actions import AddAccount
from hub.console.roles import Role
from hub.console.server import start_for_service
from testkit.broker import free_port
from hub.service import HubService
from hub.sqlite_store import SqliteHubStore
from lungta.config import load_hub_config
from lungta.console_cli import cli_perform
from protocol.topics import USED, hub_topic
from protocol.trust import TrustedKey, TrustStore
from testkit.broker import Broker
from testkit.hub_config import write_hub_config
from testkit.sim_gate import SimGate

from .stats import machine, percentile

SITE = "potala"
PASSWORD = "bench password"
HEARTBEAT_S = 10.0


# ---- the hub process ----

def _hub_process(config_path: str, ready, done) -> None:
    config = load_hub_config(Path(config_path))
    service = HubService.from_config(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console = start_for_service(config, service)
    threading.Thread(target=lambda: (service.link.subscribed.wait(60), ready.set()), daemon=True).start()
    threading.Thread(target=lambda: (done.wait(), stop.set()), daemon=True).start()
    try:
        service.run(stop)
    finally:
        if console is not None:
            console.stop()


class HubProcess:
    def __init__(self, config_path: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.done = context.Event(), context.Event()
        self.process = context.Process(target=_hub_process, args=(str(config_path), self.ready, self.done))

    def __enter__(self) -> "HubProcess":
        self.process.start()
        if not self.ready.wait(60):
            raise RuntimeError("hub did not connect within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.process.join(30)


# ---- simulated gates, in worker processes ----

def _admission(gate: SimGate, day: str) -> list:
    data = {"decision": "grant", "reason": "valid", "persons": 1, "usage": {"zone": "main", "day": day, "entries": 1, "exits": 0}, "expires": int(time.time()) + 86_400}
    return gate.make_events(1, "admission", data=data)


def _gate_worker(host: str, port: int, names: list[str], passwords: list[str], trust_key: bytes, scan_interval: float, ready, stop) -> None:
    """Each gate: one admission every ``scan_interval`` s (spread over the interval), a heartbeat every 10 s."""
    trust = TrustStore([TrustedKey("hub", VerifyKey(trust_key))])
    changed = threading.Condition()
    gates = [SimGate(host, port, SITE, name, password, trust, keep_messages=False, subscriptions=[hub_topic(SITE, f"ack/{name}")], changed=changed).connect(timeout=60)
             for name, password in zip(names, passwords)]
    ready.put(len(gates))
    day = time.strftime("%Y-%m-%d")
    beat = {"backlog": 0, "rev_seq": 0, "used_seq": 0, "clock_offset_ms": 3, "scanner": "ok", "relay": "ok", "disk_free_mb": 20_000, "temperature_c": 48.0}
    next_beat = time.monotonic()
    tick = scan_interval / max(1, len(gates))
    while not stop.is_set():
        start = time.monotonic()
        for gate in gates:
            gate.publish_events(_admission(gate, day))
            if stop.wait(max(0.0, start + tick * (gates.index(gate) + 1) - time.monotonic())):
                break
        if time.monotonic() >= next_beat:
            next_beat += HEARTBEAT_S
            for gate in gates:
                gate.heartbeat(**beat)
    for gate in gates:
        gate.disconnect()


class GateLoad:
    """``count`` gates in ``processes`` worker processes."""

    def __init__(self, broker: Broker, names: list[str], key: SigningKey, scan_interval: float, processes: int = 3) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop, ready = context.Event(), context.Queue()
        parts = [names[index::processes] for index in range(processes)]
        self.workers = [context.Process(target=_gate_worker, args=(broker.host, broker.port, part, [broker.password(n) for n in part], bytes(key.verify_key), scan_interval, ready, self.stop))
                        for part in parts if part]
        for worker in self.workers:
            worker.start()
        connected = sum(ready.get(timeout=120) for _ in self.workers)
        assert connected == len(names)

    def close(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(60)


# ---- dashboards: SSE clients in another process ----

def _sse_worker(url: str, token: str, clients: int, stop, counts) -> None:
    def read() -> None:
        request = urllib.request.Request(url + "api/v1/live", headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
        with urllib.request.urlopen(request, timeout=60) as stream:
            for line in stream:
                if line.startswith(b"data: "):
                    json.loads(line[6:])
                    with counts.get_lock():
                        counts.value += 1
                if stop.is_set():
                    return
    threads = [threading.Thread(target=read, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    stop.wait()


def _sse_probe(url: str, token: str, streamed: list) -> None:
    """A plain SSE client in the bench process: when each new probe scan reached a client, before any browser."""
    request = urllib.request.Request(url + "api/v1/live", headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
    last = 0
    with urllib.request.urlopen(request, timeout=120) as stream:
        for line in stream:
            if line.startswith(b"data: "):
                received = time.time()
                gate = next((g for g in json.loads(line[6:])["gates"] if g["gate"] == "probe"), None)
                if gate and (gate["last_scan_ms"] or 0) > last:
                    last = gate["last_scan_ms"]
                    streamed.append((last, received))


# ---- measurements ----

def _site(root: Path, key: SigningKey, names: list[str], console: bool) -> tuple[Broker, Path, str | None]:
    broker = Broker(root / "broker", SITE, names, max_queued=100_000, max_inflight=1000)
    broker.start()
    config = write_hub_config(root / "hub", broker, key)
    url = None
    if console:
        port = free_port()
        with config.open("a", encoding="utf-8") as handle:
            handle.write(f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
        url = f"http://127.0.0.1:{port}/"
        cli_perform(load_hub_config(config), AddAccount("bench", Role.VIEWER, PASSWORD))
    return broker, config, url


def _token(url: str) -> str:
    request = urllib.request.Request(url + "api/v1/login", json.dumps({"name": "bench", "password": PASSWORD}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["token"]


def relay_latencies(broker: Broker, key: SigningKey, seconds: float) -> list[float]:
    """A probe gate admits every 100 ms; a listener gate verifies the relayed used marks. Seconds each."""
    trust = TrustStore([TrustedKey("hub", key.verify_key)])
    probe = SimGate(broker.host, broker.port, SITE, "probe", broker.password("probe"), trust, keep_messages=False, subscriptions=[hub_topic(SITE, "ack/probe")]).connect()
    listener = MarkListener(broker.host, broker.port, SITE, "listener", broker.password("listener"), trust, keep_messages=False, subscriptions=[hub_topic(SITE, USED)]).connect()
    day = time.strftime("%Y-%m-%d")
    sent: dict[bytes, int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        event = _admission(probe, day)[0]
        sent[event.ticket_id] = event.at_ms
        probe.publish_events([event])
        time.sleep(0.1)  # the probe's pace (ten admissions a second), not a synchronisation
    with listener.changed:
        listener.changed.wait_for(lambda: sum(mark.ticket_id in sent for mark in listener.view.used) >= len(sent), 30)
        seen = {}
        for mark, receipt in zip(listener.view.used, listener.mark_times):
            if mark.ticket_id in sent and mark.ticket_id not in seen:
                seen[mark.ticket_id] = receipt - sent[mark.ticket_id] / 1000
    for gate in (probe, listener):
        gate.disconnect()
    return list(seen.values())


class MarkListener(SimGate):
    """A gate that stamps each used mark with the time it was verified and applied."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.mark_times: list[float] = []

    def _apply(self, message, received: float) -> None:
        before = len(self.view.used)
        super()._apply(message, received)
        self.mark_times.extend([time.time()] * (len(self.view.used) - before))


def cost_round(root: Path, key: SigningKey, gates: int, seconds: float, console: bool, dashboards: int) -> dict:
    """One condition: the hub's CPU per event (robust on a shared machine) and the relay latency (not: it shares the cores)."""
    import psutil

    names = [f"g{index:03d}" for index in range(gates)] + ["probe", "listener"]
    broker, config, url = _site(root, key, names, console)
    try:
        with HubProcess(config) as hub:
            load = GateLoad(broker, names[:gates], key, 1.0)
            context = multiprocessing.get_context("spawn")
            stop, counts = context.Event(), context.Value("i", 0)
            sse = None
            if dashboards:
                sse = context.Process(target=_sse_worker, args=(url, _token(url), dashboards, stop, counts))
                sse.start()
            try:
                process = psutil.Process(hub.process.pid)
                store = SqliteHubStore(config.parent / "hub.db")
                cpu, events, wall = sum(process.cpu_times()[:2]), store.event_count(), time.monotonic()
                latencies = relay_latencies(broker, key, seconds)
                cpu, events, wall = sum(process.cpu_times()[:2]) - cpu, store.event_count() - events, time.monotonic() - wall
                store.close()
            finally:
                stop.set()
                if sse is not None:
                    sse.join(10)
                    sse.kill()
                load.close()
        return {"gates": gates, "console": console, "dashboards": dashboards, "events_per_s": round(events / wall, 1), "hub_cpu_share": round(cpu / wall, 3),
                "cpu_ms_per_1000_events": round(1000 * 1000 * cpu / max(1, events), 1), "relay_p50_ms": round(1000 * percentile(latencies, 0.5), 1),
                "relay_p95_ms": round(1000 * percentile(latencies, 0.95), 1), "snapshots_parsed": counts.value, "load_average": os.getloadavg()[0]}
    finally:
        broker.stop()


def browser_latency(root: Path, key: SigningKey, gates: int, seconds: float, scan_interval: float) -> dict:
    from playwright.sync_api import sync_playwright

    names = [f"g{index:03d}" for index in range(gates)] + ["probe", "listener"]
    broker, config, url = _site(root, key, names, True)
    assert url is not None
    try:
        with HubProcess(config), sync_playwright() as playwright:
            load = GateLoad(broker, names[:gates], key, scan_interval)
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(url)
            page.fill("#login-form input[name=name]", "bench")
            page.fill("#login-form input[name=password]", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_function(f"() => document.querySelectorAll('.tile').length >= {gates}", timeout=120_000)
            page.evaluate("""() => {
                window.probeShown = []; let last = 0; const source = new EventSource('/api/v1/live');
                source.addEventListener('snapshot', (event) => {
                    const gate = JSON.parse(event.data).gates.find((g) => g.gate === 'probe');
                    if (gate && gate.last_scan_ms > last) {
                        last = gate.last_scan_ms; const at = last;
                        requestAnimationFrame(() => window.probeShown.push([at, Date.now()]));
                    }
                });
            }""")
            streamed: list[tuple[int, float]] = []  # (probe's last scan, when a plain SSE client had it): the server's share
            threading.Thread(target=_sse_probe, args=(url, _token(url), streamed), daemon=True).start()
            trust = TrustStore([TrustedKey("hub", key.verify_key)])
            probe = SimGate(broker.host, broker.port, SITE, "probe", broker.password("probe"), trust, keep_messages=False, subscriptions=[hub_topic(SITE, "ack/probe")]).connect()
            listener = MarkListener(broker.host, broker.port, SITE, "listener", broker.password("listener"), trust, keep_messages=False, subscriptions=[hub_topic(SITE, USED)]).connect()
            day, sent, tickets = time.strftime("%Y-%m-%d"), [], {}
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                event = _admission(probe, day)[0]
                sent.append(event.at_ms)
                tickets[event.ticket_id] = event.at_ms
                probe.publish_events([event])
                time.sleep(1.0)  # one probe admission a second: the pace, not a synchronisation
            page.wait_for_function(f"() => window.probeShown.some(([at]) => at >= {sent[-1]})", timeout=60_000)
            shown = page.evaluate("() => window.probeShown")
            with listener.changed:  # the bare limit, same admissions: gate -> hub commit -> signed used mark at another gate
                listener.changed.wait_for(lambda: sum(mark.ticket_id in tickets for mark in listener.view.used) >= len(tickets), 30)
                relay = [receipt - tickets[mark.ticket_id] / 1000 for mark, receipt in zip(listener.view.used, listener.mark_times) if mark.ticket_id in tickets]
            listener.disconnect()
            tiles = page.evaluate("() => document.querySelectorAll('.tile').length")
            browser.close()
            probe.disconnect()
            load.close()
        # each admission is on screen from the first frame showing it or a later one of the same gate
        latencies = [(next(screen for last, screen in shown if last >= at) - at) / 1000 for at in sent]
        served = [next(when for last, when in streamed if last >= at) - at / 1000 for at in sent if any(last >= at for last, _ in streamed)]
        return {"gates": gates, "scan_interval_s": scan_interval, "load_average": os.getloadavg()[0], "tiles": tiles, "samples": len(latencies), "p50_s": round(percentile(latencies, 0.5), 3), "p95_s": round(percentile(latencies, 0.95), 3), "max_s": round(max(latencies), 3),
                "bare_relay_p50_s": round(percentile(relay, 0.5), 3), "bare_relay_p95_s": round(percentile(relay, 0.95), 3),
                "sse_client_p50_s": round(percentile(served, 0.5), 3), "sse_client_p95_s": round(percentile(served, 0.95), 3)}
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=300, help="gates for the browser latency")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (console off, on, on + 5 dashboards), interleaved")
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per round and condition")
    parser.add_argument("--scan-interval", type=float, default=1.0, help="seconds between two scans of one gate in the browser run")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    key = SigningKey.generate()
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        root = Path(tmp)
        if not args.skip_browser:
            result = browser_latency(root / "browser", key, args.gates, args.seconds * 2, args.scan_interval)
            print(f"browser: {json.dumps(result)}")
        for index in range(0 if args.skip_cost else args.rounds):
            for console, dashboards in ((False, 0), (True, 0), (True, 5)):
                result = cost_round(root / f"cost-{index}-{console}-{dashboards}", key, args.gates, args.seconds, console, dashboards)
                print(f"cost: {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
