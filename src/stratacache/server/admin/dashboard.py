"""The live dashboard: one self-contained HTML page (inline CSS and JS, canvas charts, no CDN).

It polls ``/stats`` (every second; ``?interval=<ms>`` changes that) and draws, over the last
five minutes, the hit ratio, operations per second and memory used. Rates are computed in the
page from the counters' difference over the last second or more (the poll at least a second
old); the hit ratio of a span with no reads falls back to the ratio since start. The numbers
sit in elements with ids (``hit-ratio``, ``hit-ratio-total``, ``ops``, ``memory``, ``keys``,
``clients``, ``status``) that the headless browser test reads.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stratacache dashboard</title>
<style>
  :root { --bg:#0f1419; --card:#1a2129; --text:#e6e6e6; --muted:#8a96a3;
          --hit:#4caf50; --ops:#42a5f5; --mem:#ffa726; --grid:#2a333d; }
  * { box-sizing: border-box; }
  body { margin:0; padding:20px; font:14px/1.4 system-ui, sans-serif;
         background:var(--bg); color:var(--text); }
  header { display:flex; align-items:baseline; gap:16px; margin-bottom:16px; }
  h1 { font-size:20px; margin:0; }
  #status { color:var(--muted); }
  #status.error { color:#ef5350; }
  .cards { display:grid; grid-template-columns:repeat(6, 1fr); gap:12px; margin-bottom:16px; }
  .card { background:var(--card); border-radius:8px; padding:12px; }
  .card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
  .card .value { font-size:24px; font-weight:600; margin-top:4px; }
  .card .sub { color:var(--muted); font-size:12px; }
  .charts { display:grid; grid-template-columns:repeat(3, 1fr); gap:12px; }
  .chart { background:var(--card); border-radius:8px; padding:12px; }
  .chart h2 { font-size:13px; margin:0 0 8px; color:var(--muted); font-weight:500; }
  canvas { width:100%; height:220px; display:block; }
</style>
</head>
<body>
<header>
  <h1>stratacache</h1>
  <span id="status">connecting&hellip;</span>
</header>
<section class="cards">
  <div class="card"><div class="label">Hit ratio</div><div class="value" id="hit-ratio">&ndash;</div>
    <div class="sub">since start: <span id="hit-ratio-total">&ndash;</span></div></div>
  <div class="card"><div class="label">Ops/s</div><div class="value" id="ops">&ndash;</div>
    <div class="sub">commands: <span id="commands">&ndash;</span></div></div>
  <div class="card"><div class="label">Memory</div><div class="value" id="memory">&ndash;</div>
    <div class="sub">of <span id="maxmemory">&ndash;</span>, <span id="pressure">&ndash;</span></div></div>
  <div class="card"><div class="label">Keys</div><div class="value" id="keys">&ndash;</div>
    <div class="sub">evicted: <span id="evictions">&ndash;</span></div></div>
  <div class="card"><div class="label">Clients</div><div class="value" id="clients">&ndash;</div>
    <div class="sub">blocked: <span id="blocked">&ndash;</span></div></div>
  <div class="card"><div class="label">Uptime</div><div class="value" id="uptime">&ndash;</div>
    <div class="sub">policy: <span id="policy">&ndash;</span></div></div>
</section>
<section class="charts">
  <div class="chart"><h2>Hit ratio (%)</h2><canvas id="chart-hit"></canvas></div>
  <div class="chart"><h2>Operations per second</h2><canvas id="chart-ops"></canvas></div>
  <div class="chart"><h2>Memory used</h2><canvas id="chart-mem"></canvas></div>
</section>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const INTERVAL = Math.max(200, parseInt(params.get("interval") || "1000", 10));
const KEEP = Math.ceil(300000 / INTERVAL);  // five minutes of points
const series = { hit: [], ops: [], mem: [] };
const history = [];  // recent /stats answers: rates are taken over at least a second

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
function count(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}
function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
}
function percent(x) { return x === null || x === undefined ? "\\u2013" : (100 * x).toFixed(1) + "%"; }
function text(id, value) { document.getElementById(id).textContent = value; }
function push(list, value) { list.push(value); if (list.length > KEEP) list.shift(); }

function draw(id, points, color, format, fixedMax) {
  const canvas = document.getElementById(id);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  const left = 56, bottom = 18, top = 8, right = 8;
  const values = points.filter(v => v !== null);
  const max = fixedMax || Math.max(1, ...values) * 1.1;
  ctx.strokeStyle = "#2a333d"; ctx.fillStyle = "#8a96a3"; ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + (h - top - bottom) * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    ctx.fillText(format(max * (4 - i) / 4), 4, y + 4);
  }
  if (points.length < 1) return;
  // The history so far fills the width (at least a minute's worth of room), up to five minutes.
  const span = Math.min(KEEP, Math.max(points.length, Math.ceil(60000 / INTERVAL)));
  const step = (w - left - right) / Math.max(1, span - 1);
  const x0 = w - right - step * (points.length - 1);
  ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
  let drawing = false;
  points.forEach((v, i) => {
    if (v === null) { drawing = false; return; }
    const x = x0 + step * i, y = top + (h - top - bottom) * (1 - v / max);
    if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    drawing = true;
  });
  ctx.stroke();
  const last = points[points.length - 1];
  if (last !== null) {
    ctx.fillStyle = color; ctx.beginPath();
    ctx.arc(w - right, top + (h - top - bottom) * (1 - last / max), 3, 0, 2 * Math.PI); ctx.fill();
  }
}

function update(stats) {
  const now = stats.time;
  let ops = stats.ops_per_sec, ratio = stats.keyspace.hit_ratio;
  history.push(stats);
  while (history.length > 2 && history[1].time <= now - 1) history.shift();
  const base = history[0];
  if (base !== stats) {
    const dt = now - base.time;
    if (dt > 0) ops = (stats.commands_processed - base.commands_processed) / dt;
    const hits = stats.keyspace.hits - base.keyspace.hits;
    const reads = hits + stats.keyspace.misses - base.keyspace.misses;
    if (reads > 0) ratio = hits / reads;
  }
  const keys = stats.stores.reduce((a, s) => a + s.keys, 0);
  const evictions = stats.stores.reduce((a, s) => a + s.evictions, 0);
  text("hit-ratio", percent(ratio));
  text("hit-ratio-total", percent(stats.keyspace.hit_ratio));
  text("ops", count(Math.max(0, ops)));
  text("commands", count(stats.commands_processed));
  text("memory", bytes(stats.memory.used));
  text("maxmemory", stats.memory.maxmemory ? bytes(stats.memory.maxmemory) : "no limit");
  text("pressure", stats.memory.pressure_level);
  text("keys", count(keys));
  text("evictions", count(evictions));
  text("clients", String(stats.clients.connected));
  text("blocked", String(stats.clients.blocked));
  text("uptime", duration(stats.uptime_seconds));
  text("policy", stats.memory.policy);
  const status = document.getElementById("status");
  const updated = new Date(now * 1000).toLocaleTimeString();
  status.textContent = (stats.loading ? "loading, " : "") + "updated " + updated;
  status.className = "";
  push(series.hit, ratio === null ? null : 100 * ratio);
  push(series.ops, Math.max(0, ops));
  push(series.mem, stats.memory.used);
  draw("chart-hit", series.hit, "#4caf50", v => v.toFixed(0) + "%", 100);
  draw("chart-ops", series.ops, "#42a5f5", count);
  draw("chart-mem", series.mem, "#ffa726", bytes);
}

async function poll() {
  try {
    const response = await fetch("/stats", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    update(await response.json());
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = "cannot reach the server: " + error.message;
    status.className = "error";
  } finally {
    setTimeout(poll, INTERVAL);
  }
}
poll();
</script>
</body>
</html>
"""
