// The dashboard: log in, then draw every snapshot the hub pushes on /api/v1/live (server-sent events).
// No framework, no build: the hub serves these files as they are, offline.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { lang: localStorage.getItem("lungta.lang") || "zh", me: null, snap: null, catalogue: {}, source: null };
  const t = (key) => (LUNGTA_TEXT[state.lang] || {})[key] || LUNGTA_TEXT.zh[key] || LUNGTA_TEXT.en[key] || key;
  const reasonText = (reason) => { const entry = state.catalogue[reason]; return entry ? (entry[state.lang] || entry.en) : reason; };

  async function api(method, path, body) {
    const init = { method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const response = await fetch(path, init);
    const data = (response.headers.get("content-type") || "").includes("json") ? await response.json() : {};
    return { status: response.status, data };
  }

  function translate() {
    alertsKey = "";
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-t]").forEach((node) => { node.textContent = t(node.dataset.t); });
    $("lang").value = state.lang;
    if (state.snap) draw(state.snap);
  }

  function ago(ms) {
    if (!ms) return "-";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    const text = s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
    return state.lang === "en" ? `${text} ${t("ago")}` : `${text}${t("ago")}`;
  }

  function faults(gate) {
    const out = [];
    if (gate.emergency) out.push(t("emergency_on"));
    if (gate.scanner && gate.scanner !== "ok" && gate.scanner !== "none") out.push(`${t("scanner")}: ${gate.scanner}`);
    if (gate.relay === "fault") out.push(`${t("relay")}: fault`);
    return out.join(" · ");
  }

  function tile(gate) {
    const node = $("tile").content.firstElementChild.cloneNode(true);
    node.dataset.gate = gate.gate;
    node.dataset.status = gate.status;
    node.dataset.emergency = String(Boolean(gate.emergency));
    node.querySelector(".name").textContent = gate.gate;
    node.querySelector(".state").textContent = t(gate.status);
    node.querySelector(".rate").textContent = gate.per_minute;
    node.querySelector(".admitted").textContent = gate.persons_today;
    node.querySelector(".refused").textContent = gate.refusals_today;
    const lag = [gate.rev_lag, gate.used_lag].map((v) => (v === null || v === undefined ? "-" : v)).join("/");
    node.querySelector(".lag").textContent = lag;
    node.querySelector(".backlog").textContent = gate.backlog ?? "-";
    node.querySelector(".faults").textContent = faults(gate);
    node.querySelector(".seen").dataset.ms = gate.last_seen_ms;
    node.querySelector(".seen").textContent = `${t("seen")} ${ago(gate.last_seen_ms)}`;
    const health = [];  // the heartbeat's device figures, on hover: the tile keeps to what the control room scans
    if (gate.disk_free_mb !== null && gate.disk_free_mb !== undefined) health.push(`${t("disk")}: ${gate.disk_free_mb} MB`);
    if (gate.temperature_c !== null && gate.temperature_c !== undefined) health.push(`${t("temperature")}: ${gate.temperature_c} °C`);
    if (gate.clock_offset_ms !== null && gate.clock_offset_ms !== undefined) health.push(`${t("clock")}: ${gate.clock_offset_ms > 0 ? "+" : ""}${gate.clock_offset_ms} ms`);
    node.title = [...health, ...Object.entries(gate.decisions || {}).map(([reason, n]) => `${reasonText(reason)}: ${n}`)].join("\n");
    node.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    return node;
  }

  function drawTotals(snap) {
    const totals = snap.totals || {};
    const items = [
      ["persons_today", totals.persons_today], ["per_minute", totals.per_minute], ["refusals_today", totals.refusals_today],
      ["flagged_today", totals.flagged_today], ["gates_online", `${totals.online || 0} ${t("of")} ${totals.gates || 0}`],
    ];
    $("totals").replaceChildren(...items.map(([key, value]) => {
      const box = document.createElement("div");
      box.className = "total";
      box.dataset.key = key;
      const b = document.createElement("b"); b.textContent = value ?? 0;
      const label = document.createElement("span"); label.textContent = t(key);
      box.append(b, label);
      return box;
    }));
  }

  // The list shows the most severe alerts first, at most ALERTS_SHOWN (a site-wide fault can raise hundreds),
  // and is rebuilt only when the alerts changed or their "ago" texts are 5 s old.
  const ALERTS_SHOWN = 40;
  let alertsKey = "";
  function drawAlerts(snap) {
    const all = snap.alerts || [];
    const key = JSON.stringify(all) + state.lang + Math.floor(Date.now() / 5000);
    if (key === alertsKey) return;
    alertsKey = key;
    const alerts = all.slice(0, ALERTS_SHOWN);
    $("alert-count").textContent = all.length ? `(${all.length})` : "";
    if (!alerts.length) {
      const li = document.createElement("li"); li.className = "empty"; li.textContent = t("no_alerts");
      $("alerts").replaceChildren(li);
      return;
    }
    const mayAck = state.me && state.me.permissions.includes("alert_ack");
    $("alerts").replaceChildren(...alerts.map((alert) => {
      const li = document.createElement("li");
      li.dataset.severity = alert.severity; li.dataset.kind = alert.kind; li.dataset.gate = alert.gate || "";
      li.dataset.acked = String(Boolean(alert.acknowledged_by));
      const text = document.createElement("span");
      const template = t(`alert_${alert.kind}`);
      text.textContent = (template.startsWith("alert_") ? alert.message : template.replace("{gate}", alert.gate || "")) + ` · ${ago(alert.since_ms)}` + (alert.acknowledged_by ? ` · ${t("acked_by")} ${alert.acknowledged_by}` : "");
      text.title = alert.message;  // the hub's full sentence, with the figures
      li.append(text);
      if (mayAck && !alert.acknowledged_by) {
        const button = document.createElement("button"); button.textContent = t("ack");
        button.onclick = () => api("POST", `/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`);
        li.append(button);
      }
      return li;
    }));
    if (all.length > alerts.length) {
      const more = document.createElement("li"); more.className = "empty"; more.textContent = `+${all.length - alerts.length}`;
      $("alerts").append(more);
    }
  }

  function drawQuotas(snap) {
    const quotas = snap.quotas || [];
    if (!quotas.length) { const p = document.createElement("p"); p.className = "empty"; p.textContent = t("no_quotas"); $("quotas").replaceChildren(p); return; }
    $("quotas").replaceChildren(...quotas.map((q) => {
      const box = document.createElement("div"); box.className = "quota";
      const used = Math.min(100, q.cap ? (100 * q.admitted) / q.cap : 100);
      box.innerHTML = `<div></div><div class="track"><div class="fill"></div></div>`;
      box.firstChild.textContent = `${q.slot}  ${q.admitted} / ${q.cap}`;
      const fill = box.querySelector(".fill"); fill.style.width = `${used}%`; if (used >= 100) fill.classList.add("full");
      return box;
    }));
  }

  // Tiles are rebuilt only for gates whose figures changed: 300 gates redrawn twice a second would cost the screen's CPU.
  const tiles = new Map();
  function drawWall(gates) {
    if (!gates.length) {
      tiles.clear();
      const p = document.createElement("p"); p.className = "empty"; p.textContent = t("no_gates");
      $("wall").replaceChildren(p);
      return;
    }
    const nodes = gates.map((gate) => {
      const key = JSON.stringify(gate) + state.lang;
      const held = tiles.get(gate.gate);
      if (held && held.key === key) return held.node;
      const node = tile(gate);
      tiles.set(gate.gate, { key, node });
      return node;
    });
    const wall = $("wall");
    if (wall.children.length !== nodes.length || !wall.firstElementChild.classList.contains("tile")) wall.replaceChildren(...nodes);
    else nodes.forEach((node, index) => { if (wall.children[index] !== node) wall.replaceChild(node, wall.children[index]); });
  }

  function draw(snap) {
    state.snap = snap;
    $("site").textContent = snap.site;
    const link = $("link");
    link.dataset.state = snap.broker_up ? "live" : "broker_down";
    link.textContent = snap.broker_up ? t("connected") : t("broker_down");
    drawTotals(snap);
    const gates = snap.gates || [];
    $("gate-count").textContent = `(${gates.length})`;
    drawWall(gates);
    drawAlerts(snap);
    drawQuotas(snap);
    const names = gates.map((g) => g.gate).join(" ") + state.lang;
    const target = $("emergency-target");
    if (target.dataset.names !== names) {
      const chosen = target.value;
      target.replaceChildren(new Option(t("whole_site"), ""), ...gates.map((g) => new Option(g.gate, g.gate)));
      target.value = chosen;
      target.dataset.names = names;
    }
    document.body.dataset.version = snap.version;
  }

  function listen() {
    if (state.source) state.source.close();
    const source = new EventSource("/api/v1/live");
    state.source = source;
    // Draw at most once per frame, the newest snapshot: a slow screen skips snapshots instead of falling behind.
    let pending = null;
    source.addEventListener("snapshot", (event) => {
      const first = pending === null;
      pending = event.data;
      if (first) requestAnimationFrame(() => { const data = pending; pending = null; draw(JSON.parse(data)); });
    });
    source.onerror = () => { $("link").dataset.state = "lost"; $("link").textContent = t("connecting"); };
  }

  function showActions() {
    const perms = state.me.permissions;
    let any = false;
    document.querySelectorAll("#actions [data-needs]").forEach((box) => { const ok = perms.includes(box.dataset.needs); box.hidden = !ok; any = any || ok; });
    $("actions").hidden = !any;
  }

  async function start() {
    const me = await api("GET", "/api/v1/me");
    if (me.status !== 200) { $("login").hidden = false; $("main").hidden = true; $("logout").hidden = true; return; }
    state.me = me.data;
    $("who").textContent = `${me.data.name} (${me.data.role})`;
    $("logout").hidden = false; $("login").hidden = true; $("main").hidden = false;
    const catalogue = await api("GET", "/api/v1/catalogue");
    if (catalogue.status === 200) state.catalogue = catalogue.data;
    showActions();
    const reads = me.data.permissions.includes("read");
    document.body.dataset.read = String(reads);
    if (reads) listen();
  }

  function report(answer) {
    const summary = Object.entries(answer.data).filter(([key, value]) => key !== "audit_seq" && typeof value !== "object").map(([key, value]) => `${key} ${value}`).join(", ");
    $("action-result").textContent = answer.status < 300 ? `${t("done")}: ${summary}` : `${answer.status}: ${answer.data.error || ""}`;
  }

  $("login-form").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const answer = await api("POST", "/api/v1/login", { name: form.get("name"), password: form.get("password") });
    $("login-error").textContent = answer.status === 200 ? "" : answer.status === 401 ? t("wrong_login") : answer.data.error;
    if (answer.status === 200) start();
  };
  $("logout").onclick = async () => { await api("POST", "/api/v1/logout", {}); if (state.source) state.source.close(); location.reload(); };
  $("lang").onchange = (event) => { state.lang = event.target.value; localStorage.setItem("lungta.lang", state.lang); translate(); };
  $("revoke-form").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const ids = String(form.get("ticket_ids")).split(/[\s,]+/).filter(Boolean);
    const key = `ui-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    const init = { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "Idempotency-Key": key },
                   body: JSON.stringify({ ticket_ids: ids, reason: form.get("reason") }) };
    const response = await fetch("/api/v1/revocations", init);
    report({ status: response.status, data: await response.json() });
    if (response.status < 300) event.target.reset();
  };
  $("quota-form").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    report(await api("POST", "/api/v1/quotas", { date: form.get("date"), slot: form.get("slot"), cap: Number(form.get("cap")) }));
  };
  $("emergency-form").onsubmit = async (event) => {
    event.preventDefault();
    const on = event.submitter ? event.submitter.value === "true" : true;
    if (on && !window.confirm(t("confirm_emergency"))) return;
    const form = new FormData(event.target);
    const target = form.get("target");
    const body = { command: "emergency_open", args: { on, reason: form.get("reason") } };
    if (target) body.gates = [target]; else body.site = true;
    report(await api("POST", "/api/v1/commands", body));
  };
  // Customer service: every event of one ticket across gates (was it used, where, when, why refused).
  $("ticket-form").onsubmit = async (event) => {
    event.preventDefault();
    const id = String(new FormData(event.target).get("ticket_id")).trim().toLowerCase();
    const answer = await api("GET", `/api/v1/tickets/${encodeURIComponent(id)}`);
    if (answer.status !== 200) { $("ticket-summary").textContent = `${answer.status}: ${answer.data.error || ""}`; $("ticket-events").replaceChildren(); return; }
    const found = answer.data;
    const revoked = found.revocation && found.revocation.revoked ? ` · ${t("revoked")}` : "";
    $("ticket-summary").textContent = `${found.used ? t("used") : t("not_used")} · ${found.events.length} ${t("events")}${revoked}`;
    $("ticket-events").replaceChildren(...found.events.map((e) => {
      const li = document.createElement("li"); li.dataset.kind = e.kind;
      li.textContent = `${new Date(e.at_ms).toLocaleString(state.lang === "en" ? "en-GB" : "zh-CN")} · ${e.gate} · ${reasonText(e.reason)}`;
      return li;
    }));
  };
  // Reports as CSV for a spreadsheet; the session cookie authenticates the download.
  function reportLinks() {
    const day = $("report-form").elements.date.value;
    document.querySelectorAll("#report-links a").forEach((link) => {
      link.href = `/api/v1/reports/${link.dataset.report}?format=csv${day ? `&date=${day}` : ""}`;
    });
  }
  $("report-form").elements.date.onchange = reportLinks;
  $("report-form").elements.date.value = new Date().toLocaleDateString("sv");  // today, local, YYYY-MM-DD
  reportLinks();
  setInterval(() => {  // the "seen 5s ago" lines age between snapshots
    document.querySelectorAll(".tile .seen").forEach((node) => { node.textContent = `${t("seen")} ${ago(Number(node.dataset.ms))}`; });
  }, 5000);
  setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString(state.lang === "en" ? "en-GB" : "zh-CN"); }, 1000);
  translate();
  start();
})();
