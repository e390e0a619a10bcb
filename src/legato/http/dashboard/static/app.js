// legato dashboard: plain JavaScript, no build step. Views are drawn from the
// JSON API; charts and graphs are SVG drawn here. Every value from the server
// goes into the page as text (never as HTML).
"use strict";

const state = { range: "24h", view: null, params: {}, token: null, refreshTimer: null };
const WORKFLOW_COLORS = ["#3b5bdb", "#2f9e44", "#f08c00", "#ae3ec9", "#1098ad", "#e8590c", "#5c7cfa", "#c2255c"];
const ACTIVE = ["running", "suspended", "paused", "compensating"];
const FINAL = ["succeeded", "failed", "compensated", "cancelled"];

// -- DOM helpers -------------------------------------------------------------

function h(tag, attrs, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "line", "title", "circle", "polyline", "defs", "marker"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
function fmtPct(x) {
  if (x === null || x === undefined) return "–";
  const pct = x * 100;
  return `${Math.abs(pct - Math.round(pct)) < 0.05 ? Math.round(pct) : pct.toFixed(1)}%`;
}
const fmtNum = (n) => Number(n).toLocaleString("en-US");
function fmtTime(epoch) {
  if (!epoch) return "–";
  const d = new Date(epoch * 1000);
  return d.toLocaleString("en-GB", { month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
const fmtClock = (epoch) => new Date(epoch * 1000).toLocaleTimeString("en-GB");
const statusBadge = (status) => h("span", { class: `status ${status}`, "data-testid": "status" }, status);

function toast(message, error) {
  const el = h("div", { class: `toast${error ? " error" : ""}`, "data-testid": "toast" }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), error ? 8000 : 4000);
}

// -- API ---------------------------------------------------------------------

function headers(extra) {
  const found = { ...(extra || {}) };
  if (state.token) found.Authorization = `Bearer ${state.token}`;
  return found;
}

async function api(path, options) {
  const response = await fetch(path, { ...(options || {}), headers: headers(options && options.headers) });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401 || (response.status === 403 && body && /disabled|token/.test(body.error || ""))) {
    if (await askToken()) return api(path, options);
  }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

async function post(path, body) {
  return api(path, { method: "POST", body: JSON.stringify(body || {}), headers: { "Content-Type": "application/json" } });
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.onclose = () => {
      if (dialog.returnValue === "ok" && input.value) {
        state.token = input.value.trim();
        sessionStorage.setItem("legato-token", state.token);
        resolve(true);
      } else resolve(false);
    };
    dialog.showModal();
  });
}

// -- charts ------------------------------------------------------------------

function colorOf(workflows, name) {
  return WORKFLOW_COLORS[Math.max(0, workflows.indexOf(name)) % WORKFLOW_COLORS.length];
}

function legend(workflows) {
  return h("div", { class: "legend" }, workflows.map((w) => h("span", {}, h("i", { style: `background:${colorOf(workflows, w)}` }), w)));
}

// Stacked columns: one column per time bucket, one stack per workflow.
function throughputChart(overview, workflows) {
  const { since, until, bucket } = overview.range;
  const first = Math.floor(since / bucket) * bucket;
  const slots = [];
  for (let t = first; t <= until; t += bucket) slots.push(t);
  const byKey = new Map(overview.throughput.map((b) => [`${b.workflow}|${b.bucket}`, b]));
  const totals = slots.map((t) => workflows.reduce((sum, w) => sum + ((byKey.get(`${w}|${t}`) || {}).finished || 0), 0));
  const max = Math.max(1, ...totals);
  const W = 640, H = 200, left = 36, bottom = 22, top = 8;
  const width = (W - left - 4) / slots.length;
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, "data-testid": "chart-throughput", role: "img" });
  for (const frac of [0, 0.5, 1]) {
    const y = top + (H - top - bottom) * (1 - frac);
    svg.append(h("line", { class: "gridline", x1: left, x2: W, y1: y, y2: y }));
    svg.append(h("text", { class: "axis", x: left - 4, y: y + 3, "text-anchor": "end" }, fmtNum(Math.round(max * frac))));
  }
  slots.forEach((t, i) => {
    let y = H - bottom;
    for (const w of workflows) {
      const b = byKey.get(`${w}|${t}`);
      if (!b || !b.finished) continue;
      const height = ((H - top - bottom) * b.finished) / max;
      y -= height;
      svg.append(h("rect", {
        class: "bar", x: left + i * width + 1, y, width: Math.max(1, width - 2), height,
        fill: colorOf(workflows, w), "data-workflow": w, "data-count": b.finished,
      }, h("title", {}, `${w}: ${b.finished} finished (${b.failed} failed) at ${fmtTime(t)}`)));
    }
  });
  const step = Math.max(1, Math.ceil(slots.length / 8));
  slots.forEach((t, i) => {
    if (i % step) return;
    const label = bucket >= 86400 ? new Date(t * 1000).toLocaleDateString("en-GB", { day: "2-digit", month: "short" })
      : new Date(t * 1000).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
    svg.append(h("text", { class: "axis", x: left + i * width + width / 2, y: H - 6, "text-anchor": "middle" }, label));
  });
  return svg;
}

// Horizontal bars, one per workflow.
function barChart(testid, rows, workflows, format, maxValue) {
  const usable = rows.filter((r) => r.value !== null && r.value !== undefined);
  if (!usable.length) return h("div", { class: "empty", "data-testid": testid }, "no finished runs in this range");
  const max = maxValue || Math.max(...usable.map((r) => r.value), 1e-9);
  const W = 420, row = 26, H = usable.length * row + 6, left = 90, right = 70;
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, "data-testid": testid, role: "img" });
  usable.forEach((r, i) => {
    const y = 4 + i * row;
    const width = Math.max(2, ((W - left - right) * r.value) / max);
    svg.append(h("text", { class: "axis", x: left - 6, y: y + 15, "text-anchor": "end" }, r.label));
    svg.append(h("rect", { class: "bar", x: left, y: y + 3, width, height: row - 9, rx: 3, fill: colorOf(workflows, r.label), "data-value": r.value }));
    svg.append(h("text", { class: "axis value", x: left + width + 6, y: y + 15 }, format(r.value)));
  });
  return svg;
}

// -- the state graph ------------------------------------------------------------
// dagre (vendored, static/vendor/) places the states in layers, left to right,
// with the edge labels as nodes of their own so that nothing overlaps. Edges
// are then drawn orthogonally: along a node's row, then turning only in the
// gaps between layers, where no state stands, so no edge crosses a state.

const NODE_W = 150;
const NODE_H = 46;
const PORT_GAP = 9; // between edges leaving (or entering) one side of a state
let measurer = null;

function textWidth(text, size) {
  measurer = measurer || document.createElement("canvas").getContext("2d");
  measurer.font = `${size}px ${getComputedStyle(document.body).fontFamily}`;
  return Math.ceil(measurer.measureText(text).width);
}

function edgeText(edge) {
  const label = String(edge.label || "");
  return edge.join || label.startsWith("branch") || label === "each item" ? "" : label;
}

function layoutGraph(graph) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 26, edgesep: 18, ranksep: 64, marginx: 14, marginy: 14 });
  for (const node of graph.nodes) g.setNode(node.id, { width: NODE_W, height: NODE_H });
  graph.edges.forEach((edge, i) => {
    const text = edgeText(edge);
    g.setEdge(edge.from, edge.to, text ? { width: textWidth(text, 10) + 10, height: 16, labelpos: "c" } : {}, `e${i}`);
  });
  dagre.layout(g);
  return g;
}

// Half the width of each layer, by its centre x: all of a layer's nodes share that centre.
function layerWidths(g) {
  const half = new Map();
  const note = (x, w) => { const key = Math.round(x); half.set(key, Math.max(half.get(key) || 0, w / 2)); };
  for (const id of g.nodes()) note(g.node(id).x, g.node(id).width);
  for (const e of g.edges()) { const edge = g.edge(e); if (edge.width) note(edge.x, edge.width); }
  return (x) => half.get(Math.round(x)) || 0;
}

// The stops an edge passes: its states' centres and dagre's points between layers.
function stopsOf(g, e) {
  const src = g.node(e.v);
  const tgt = g.node(e.w);
  return [{ x: src.x, y: src.y, node: e.v }, ...g.edge(e).points.slice(1, -1), { x: tgt.x, y: tgt.y, node: e.w }];
}

// Where edges leave and enter a state's sides: spread out, ordered by where they go.
function ports(g, routes) {
  const sides = new Map();
  for (const r of routes) {
    const [first, second] = [r.stops[0], r.stops[1]];
    const [last, before] = [r.stops[r.stops.length - 1], r.stops[r.stops.length - 2]];
    for (const [end, other, which] of [[first, second, "start"], [last, before, "end"]]) {
      const key = `${end.node}|${other.x > end.x ? "r" : "l"}`;
      sides.set(key, [...(sides.get(key) || []), { r, which, toward: other.y }]);
    }
  }
  for (const [key, found] of sides) {
    const node = g.node(key.split("|")[0]);
    found.sort((a, b) => a.toward - b.toward);
    const step = Math.min(PORT_GAP, (node.height - 12) / Math.max(1, found.length - 1));
    found.forEach((f, i) => { f.r[f.which] = node.y + (i - (found.length - 1) / 2) * step; });
  }
}

function routeEdges(g) {
  const half = layerWidths(g);
  const routes = g.edges().filter((e) => e.v !== e.w).map((e) => ({ e, stops: stopsOf(g, e) }));
  ports(g, routes);
  // Edges turning in the same gap get lanes of their own, so their vertical runs do not merge.
  const lanes = new Map();
  for (const r of routes) {
    r.gaps = [];
    for (let i = 0; i < r.stops.length - 1; i++) {
      const [a, b] = [r.stops[i], r.stops[i + 1]];
      const dir = b.x > a.x ? 1 : -1;
      const from = a.x + dir * half(a.x);
      const to = b.x - dir * half(b.x);
      const key = `${Math.round(Math.min(from, to))}`;
      lanes.set(key, [...(lanes.get(key) || []), r]);
      r.gaps.push({ key, from, to });
    }
  }
  const laneX = (gap, r) => {
    const users = lanes.get(gap.key);
    const width = Math.abs(gap.to - gap.from);
    const step = Math.min(6, (width - 8) / Math.max(1, users.length));
    return (gap.from + gap.to) / 2 + (users.indexOf(r) - (users.length - 1) / 2) * step;
  };
  const placed = new Map();
  for (const r of routes) {
    const points = [];
    r.stops.forEach((a, i) => {
      if (i === r.stops.length - 1) return;
      const b = r.stops[i + 1];
      const dir = b.x > a.x ? 1 : -1;
      const ay = i === 0 ? r.start : a.y;
      const by = i === r.stops.length - 2 ? r.end : b.y;
      if (i === 0) points.push([a.x + (dir * NODE_W) / 2, ay]);
      const x = laneX(r.gaps[i], r);
      points.push([x, ay], [x, by]);
      points.push(i === r.stops.length - 2 ? [b.x - (dir * NODE_W) / 2, by] : [b.x, by]);
    });
    placed.set(r.e.name, points);
  }
  for (const e of g.edges()) if (e.v === e.w) placed.set(e.name, g.edge(e).points.map((p) => [p.x, p.y]));
  return placed;
}

function drawGraph(graph) {
  const g = layoutGraph(graph);
  const routes = routeEdges(g);
  const { width, height } = g.graph();
  const svg = h("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-testid": "run-graph" },
    h("defs", {}, h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      h("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#adb5bd" }))));
  const labels = [];
  graph.edges.forEach((edge, i) => {
    const points = routes.get(`e${i}`) || [];
    const d = points.map((p, j) => `${j ? "L" : "M"} ${p[0].toFixed(1)} ${p[1].toFixed(1)}`).join(" ");
    svg.append(h("path", { class: `edge${edge.join ? " join" : ""}`, d, "marker-end": "url(#arrow)", "data-from": edge.from, "data-to": edge.to }));
    const placed = g.edge({ v: edge.from, w: edge.to, name: `e${i}` });
    const text = edgeText(edge);
    if (text) labels.push(h("text", { class: "edge-label", x: placed.x.toFixed(1), y: (placed.y + 3.5).toFixed(1), "text-anchor": "middle", "data-from": edge.from, "data-to": edge.to }, text));
  });
  svg.append(...labels);
  for (const node of graph.nodes) {
    const at = g.node(node.id);
    const classes = ["node"];
    if (graph.visited.includes(node.id)) classes.push("visited");
    if (graph.current.includes(node.id)) classes.push("current");
    if (graph.failed.includes(node.id)) classes.push("failed");
    svg.append(h("g", { class: classes.join(" "), "data-state": node.id, transform: `translate(${(at.x - NODE_W / 2).toFixed(1)},${(at.y - NODE_H / 2).toFixed(1)})` },
      h("rect", { width: NODE_W, height: NODE_H, rx: node.kind === "choice" ? 18 : 8 }),
      h("text", { x: 10, y: 19 }, node.id.length > 20 ? node.id.slice(0, 19) + "…" : node.id),
      h("text", { class: "kind", x: 10, y: 35 }, node.kind + (node.handler ? ` · ${node.handler.split(/[.:]/).pop()}` : "")),
      h("title", {}, `${node.id} (${node.kind})`)));
  }
  return svg;
}

// -- tables ------------------------------------------------------------------

// A table that live updates patch row by row: rows need a data-key.
function table(testid, key, head, rows) {
  return h("div", { class: "table-wrap", "data-key": key, "data-patch": true },
    h("table", { "data-testid": testid, "data-key": "table", "data-patch": true },
      h("thead", { "data-key": "head" }, h("tr", {}, head.map((c) => (c instanceof Node ? c : h("th", {}, c))))),
      h("tbody", { "data-key": "body", "data-patch": true }, rows)));
}

const th = (text, cls) => h("th", { class: cls || "" }, text);

// -- views: overview ----------------------------------------------------------

async function overviewView(root) {
  const data = await api(`/api/overview?range=${state.range}`);
  const workflows = data.workflows.map((w) => w.workflow);
  const tiles = h("div", { class: "tiles", "data-testid": "tiles", "data-key": "tiles", "data-patch": true },
    [...ACTIVE, ...FINAL].map((s) => h("div", { class: `tile ${s}`, "data-testid": `tile-${s}`, "data-key": s },
      h("div", { class: "value" }, fmtNum(data.statuses[s] || 0)),
      h("div", { class: "label" }, ACTIVE.includes(s) ? `${s} now` : `${s}`))));
  const bucketName = data.range.bucket >= 86400 ? "day" : data.range.bucket >= 3600 ? "hour" : `${data.range.bucket / 60} minutes`;
  const business = h("div", { class: "grid two", "data-key": "business", "data-patch": true },
    h("div", { class: "panel chart", "data-key": "throughput" }, h("h2", {}, `Runs completed per ${bucketName}`), throughputChart(data, workflows), legend(workflows)),
    h("div", { class: "grid", "data-key": "figures", "data-patch": true },
      h("div", { class: "panel chart", "data-key": "completion" }, h("h2", {}, "Average completion time"),
        barChart("chart-completion", data.workflows.map((w) => ({ label: w.workflow, value: w.avg_completion })), workflows, fmtDuration)),
      h("div", { class: "panel chart", "data-key": "failure" }, h("h2", {}, "Failure rate by workflow"),
        barChart("chart-failure", data.workflows.map((w) => ({ label: w.workflow, value: w.failure_rate })), workflows, fmtPct, 1)),
      h("div", { class: "panel chart", "data-key": "sla" }, h("h2", {}, "SLA compliance"),
        barChart("chart-sla", data.workflows.map((w) => ({ label: w.workflow, value: w.sla_compliance })), workflows, fmtPct, 1))));

  const steps = table("steps-table", "steps",
    ["workflow", "step", "attempts", "success", "", "p50", "p95", "p99"].map((c, i) => th(c, i >= 2 && i !== 4 ? "num" : "")),
    data.steps.map((s) => {
      const name = `${s.workflow}.${s.state}${s.kind === "compensation" ? " (undo)" : ""}`;
      return h("tr", { "data-testid": "step-row", "data-step": name, "data-key": name },
        h("td", {}, s.workflow), h("td", {}, s.kind === "compensation" ? `${s.state} (compensation)` : s.state),
        h("td", { class: "num" }, fmtNum(s.attempts)), h("td", { class: "num", "data-testid": "success-rate" }, fmtPct(s.success_rate)),
        h("td", { class: "bar-cell" }, h("div", { class: "minibar" }, h("span", { style: `width:${(s.success_rate || 0) * 100}%` }))),
        h("td", { class: "num" }, fmtDuration(s.p50)), h("td", { class: "num" }, fmtDuration(s.p95)), h("td", { class: "num" }, fmtDuration(s.p99)));
    }));
  const errors = data.errors.length ? table("errors-table", "errors",
    ["error", "where", "count", "last seen", "sample"].map((c) => th(c, c === "count" ? "num" : "")),
    data.errors.map((e) => h("tr", { "data-testid": "error-row", "data-key": `${e.workflow}.${e.state}.${e.error_type}` },
      h("td", { class: "mono" }, e.error_type), h("td", {}, `${e.workflow}.${e.state}`), h("td", { class: "num" }, fmtNum(e.count)),
      h("td", {}, fmtTime(e.last_seen)),
      h("td", { class: "wrap" }, h("a", { href: `#/runs/${e.sample_run}` }, e.sample_message || e.sample_run)))))
    : h("div", { class: "empty", "data-testid": "errors-table", "data-key": "errors-empty" }, "no failed attempts in this range");

  root.replaceChildren(
    h("h1", { "data-key": "title" }, "Overview"), tiles,
    h("div", { class: "section", "data-key": "business-title" }, "Business"), business,
    h("div", { class: "section", "data-key": "execution-title" }, "Execution"),
    h("div", { class: "grid two", "data-key": "execution", "data-patch": true },
      h("div", { class: "panel", "data-key": "steps", "data-patch": true }, h("h2", { "data-key": "h" }, "Steps: success rate and latency"),
        h("p", { class: "muted", "data-key": "note" }, "over the latest 20,000 attempts in the range"),
        data.steps.length ? steps : h("div", { class: "empty", "data-key": "steps-empty" }, "no step ran in this range")),
      h("div", { class: "panel", "data-key": "errors", "data-patch": true }, h("h2", { "data-key": "h" }, "Error patterns"), errors,
        h("p", { "data-key": "letters" }, h("a", { href: "#/dead-letters", "data-testid": "open-dead-letters" }, `${fmtNum(data.dead_letters.open)} open dead letters`)))));
}

// -- views: runs list ---------------------------------------------------------

const PAGE = 50;
const MAX_PAGE = 500;
const shown = new Map(); // how many runs each list shows (Load more), by its address

function runRow(r) {
  return h("tr", { class: "clickable", "data-testid": "run-row", "data-run": r.id, "data-key": r.id, onclick: () => { location.hash = `#/runs/${r.id}`; } },
    h("td", { class: "mono" }, h("a", { href: `#/runs/${r.id}` }, r.id.slice(0, 8))), h("td", {}, `${r.workflow} v${r.workflow_version}`),
    h("td", {}, statusBadge(r.status)), h("td", {}, r.current_states.join(", ") || "–"),
    h("td", {}, fmtTime(r.created_at)), h("td", { class: "num" }, fmtDuration(r.duration)),
    h("td", { class: "wrap" }, r.error ? `${r.error.type}: ${r.error.message}` : ""));
}

async function runsView(root, params) {
  const query = new URLSearchParams();
  if (params.status) query.set("status", params.status);
  if (params.workflow) query.set("workflow", params.workflow);
  // Search attributes (path=value, separated by spaces), idempotency key, creation time.
  (params.where || "").split(/\s+/).filter(Boolean).forEach((w) => query.append("where", w));
  ["key", "since", "until"].forEach((k) => { if (params[k]) query.set(k, params[k]); });
  const address = query.toString();
  const limit = shown.get(address) || PAGE;
  const data = await api(`/api/runs?${query}&limit=${limit}`);
  const setFilter = (key, value) => {
    const next = { ...params, [key]: value || undefined };
    location.hash = "#/runs" + toQuery(next);
  };
  const status = h("select", { "data-testid": "filter-status", onchange: (e) => setFilter("status", e.target.value) },
    h("option", { value: "" }, "any status"), [...ACTIVE, "pending", ...FINAL].map((s) => h("option", { value: s, selected: params.status === s }, s)));
  const workflow = h("select", { "data-testid": "filter-workflow", onchange: (e) => setFilter("workflow", e.target.value) },
    h("option", { value: "" }, "any workflow"), data.workflows.map((w) => h("option", { value: w, selected: params.workflow === w }, w)));
  const find = h("input", { type: "text", placeholder: "go to run id…", "data-testid": "find-run",
    onkeydown: (e) => { if (e.key === "Enter" && e.target.value.trim()) location.hash = `#/runs/${e.target.value.trim()}`; } });
  const field = (name, placeholder, size) => h("input", { type: "text", name, placeholder, size, value: params[name] || "", "data-testid": `filter-${name}` });
  const search = h("form", { class: "search", "data-testid": "filter-form", onsubmit: (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const next = { status: params.status, workflow: params.workflow };
    ["where", "key", "since", "until"].forEach((k) => { next[k] = String(form.get(k) || "").trim() || undefined; });
    location.hash = "#/runs" + toQuery(next);
  } },
    field("where", "customer.id=42 order_id=A1", 26), field("key", "idempotency key", 14),
    field("since", "since: 2h or 2026-12-01", 16), field("until", "until", 10),
    h("button", { type: "submit", "data-testid": "filter-apply" }, "Filter"));
  const more = h("button", { "data-testid": "more", disabled: !data.next || limit >= MAX_PAGE, onclick: () => {
    shown.set(address, Math.min(limit + PAGE, MAX_PAGE));
    refresh();
  } }, "Load more");
  root.replaceChildren(
    h("h1", { "data-key": "title" }, "Runs"),
    h("div", { class: "filters", "data-key": "filters" }, status, workflow, find),
    h("div", { class: "filters", "data-key": "search" }, search),
    h("div", { class: "panel", "data-key": "runs", "data-patch": true },
      data.runs.length ? table("runs-table", "runs",
        ["run", "workflow", "status", "at", "started", "took", "error"].map((c) => th(c, c === "took" ? "num" : "")),
        data.runs.map(runRow))
        : h("div", { class: "empty", "data-testid": "runs-table", "data-key": "empty" }, "no runs match"),
      h("p", { class: "pager", "data-key": "more" }, more, h("span", { class: "muted" }, `showing ${fmtNum(data.runs.length)}${data.next ? " (more older)" : ""}`))));
}

function toQuery(params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const text = query.toString();
  return text ? `?${text}` : "";
}

// -- views: one run -----------------------------------------------------------

const GOOD = ["step_succeeded", "compensation_succeeded", "joined", "state_reached"];
const BAD = ["step_failed", "compensation_failed", "dead_lettered", "suspended", "rejected", "sla_missed"];
const OPERATOR = ["operator_retry", "operator_skip", "operator_cancel", "operator_pause", "operator_resume", "signal_received", "completion_received", "run_resumed"];
const FINISHED = { succeeded: "good", failed: "bad", compensated: "warn", cancelled: "operator" };

// How a history entry is coloured: a finished run by how it finished.
function entryClass(e) {
  if (e.kind === "run_finished") return FINISHED[(e.detail || {}).status] || "";
  if (BAD.includes(e.kind)) return "bad";
  if (GOOD.includes(e.kind)) return "good";
  return OPERATOR.includes(e.kind) ? "operator" : "";
}

function describeEntry(e) {
  const d = e.detail || {};
  const parts = [];
  if (d.error) parts.push(`${d.error.type}: ${d.error.message}`);
  if (d.outcome) parts.push(`→ ${d.outcome}`);
  if (d.duration !== undefined) parts.push(fmtDuration(d.duration));
  if (d.delay !== undefined) parts.push(`retry in ${fmtDuration(d.delay)}`);
  if (d.next) parts.push(`→ ${d.next} (${d.rule})`);
  if (d.status) parts.push(d.status);
  if (d.signal) parts.push(`signal ${d.signal}`);
  if (d.reason && !d.error) parts.push(d.reason);
  if (e.actor) parts.push(`by ${e.actor}`);
  return parts.join(" · ");
}

function runActions(data) {
  const run = data.run;
  const acts = data.actions;
  const stuck = acts.stuck_states;
  const stateSelect = stuck.length > 1 ? h("select", { "data-testid": "action-state" }, stuck.map((s) => h("option", { value: s }, s))) : null;
  const chosenState = () => (stateSelect ? stateSelect.value : stuck[0] || null);
  const signalName = h("select", { "data-testid": "signal-name" }, acts.signal.map((s) => h("option", { value: s }, s)));
  const signalData = h("input", { type: "text", placeholder: '{"approved_by": "me"}', "data-testid": "signal-data" });
  const done = () => {
    // What was typed is spent: the fields no longer hold the region against live updates.
    signalData.value = "";
    if (stateSelect) stateSelect.selectedIndex = 0;
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
  };
  const act = async (action, body, confirmText) => {
    if (confirmText && !confirm(confirmText)) return;
    try {
      const result = await post(`/api/runs/${run.id}/${action}`, body);
      done();
      toast(`${action}: run is ${result.run.status}`);
      refresh();
    } catch (err) { toast(`${action} refused: ${err.message}`, true); }
  };
  const parsed = (input) => {
    if (!input.value.trim()) return null;
    try { return JSON.parse(input.value); } catch (err) { toast(`not valid JSON: ${err.message}`, true); throw err; }
  };
  const disabled = !data.can_act;
  return h("div", { class: "actions", "data-testid": "actions", "data-key": "actions" },
    h("button", { class: "primary", "data-testid": "action-retry", disabled: disabled || !acts.retry, title: acts.why_not || "", onclick: () => act("retry", { state: chosenState() }) }, "Retry"),
    h("button", { "data-testid": "action-skip", disabled: disabled || !acts.skip, title: acts.why_not || "", onclick: () => act("skip", { state: chosenState() }) }, "Skip"),
    stateSelect,
    h("button", { "data-testid": "action-pause", disabled: disabled || !acts.pause, onclick: () => act("pause", {}, "Pause this run (running steps finish, no new step starts)?") }, "Pause"),
    h("button", { "data-testid": "action-resume", disabled: disabled || !acts.resume, onclick: () => act("resume", {}) }, "Resume"),
    h("button", { class: "danger", "data-testid": "action-cancel", disabled: disabled || !acts.cancel, onclick: () => act("cancel", { compensate: true }, "Cancel this run (completed steps are compensated)?") }, "Cancel"),
    acts.signal.length ? [signalName, signalData, h("button", { "data-testid": "action-signal", disabled, onclick: () => {
      let body; try { body = parsed(signalData); } catch (_) { return; }
      act("signal", { name: signalName.value, data: body });
    } }, "Send signal")] : null,
    disabled ? h("span", { class: "muted" }, "start the dashboard with --app to act on runs") : null);
}

async function runView(root, params) {
  const data = await api(`/api/runs/${encodeURIComponent(params.id)}`);
  const run = data.run;
  const timeline = h("ol", { class: "timeline", "data-testid": "timeline", "data-key": "timeline", "data-patch": true },
    data.history.map((e) => h("li", { class: entryClass(e), "data-kind": e.kind, "data-key": `${e.version}.${e.idx}` },
      h("span", { class: "at", title: fmtTime(e.at) }, fmtClock(e.at)),
      h("span", {}, h("span", { class: "kind" }, e.kind.replace(/_/g, " ")), e.state ? ` ${e.state}` : "", e.attempt ? ` #${e.attempt}` : "",
        h("div", { class: "detail" }, describeEntry(e))))));
  const letters = data.dead_letters.length
    ? h("div", { class: "panel", style: "margin-top:16px", "data-key": "letters", "data-patch": true }, h("h2", { "data-key": "h" }, "Dead letters of this run"), letterTable(data.dead_letters))
    : null;
  root.replaceChildren(
    h("div", { class: "run-head", "data-key": "head" }, h("h1", {}, `${run.workflow} v${run.workflow_version}`), h("span", { "data-testid": "run-status" }, statusBadge(run.status)),
      h("span", { class: "mono muted", "data-testid": "run-id" }, run.id)),
    h("div", { class: "panel", "data-key": "where", "data-patch": true }, h("h2", { "data-key": "h" }, "Where the run is"),
      data.graph ? h("div", { class: "graph", "data-key": "graph" }, drawGraph(data.graph)) : h("div", { class: "empty", "data-key": "graph-off" }, "start the dashboard with --app to see the workflow's graph"),
      h("h2", { style: "margin-top:14px", "data-key": "h-actions" }, "Actions"), runActions(data)),
    h("div", { class: "grid two", style: "margin-top:16px", "data-key": "details", "data-patch": true },
      h("div", { class: "panel", "data-key": "run", "data-patch": true }, h("h2", { "data-key": "h" }, "Run"),
        h("dl", { class: "kv", "data-key": "kv" },
          h("dt", {}, "status"), h("dd", {}, run.status), h("dt", {}, "at"), h("dd", { "data-testid": "run-states" }, run.current_states.join(", ") || "–"),
          h("dt", {}, "started"), h("dd", {}, fmtTime(run.created_at)), h("dt", {}, "finished"), h("dd", {}, fmtTime(run.finished_at)),
          h("dt", {}, "took"), h("dd", {}, fmtDuration(run.duration)),
          h("dt", {}, "SLA"), h("dd", {}, run.sla_met === null ? (run.deadline ? `due ${fmtTime(run.deadline)}` : "none") : run.sla_met ? "met" : "missed"),
          h("dt", {}, "error"), h("dd", {}, run.error ? `${run.error.type}: ${run.error.message}` : "–"),
          h("dt", {}, "trace id"), h("dd", { class: "trace" }, run.trace_id),
          h("dt", {}, "version"), h("dd", {}, run.version),
          run.parent ? [h("dt", {}, "parent"), h("dd", {}, h("a", { href: `#/runs/${run.parent}`, class: "mono", "data-testid": "run-parent" }, run.parent))] : null),
        data.children.length ? h("div", { class: "children", "data-testid": "run-children", "data-key": "children" }, h("h2", { style: "margin-top:14px" }, `Children (${data.children.length})`),
          h("table", {}, h("tbody", {}, data.children.map((c) => h("tr", { "data-testid": "child-row", "data-run": c.id },
            h("td", { class: "mono" }, h("a", { href: `#/runs/${c.id}` }, c.id.slice(0, 8))), h("td", {}, `${c.workflow} v${c.workflow_version}`),
            h("td", {}, statusBadge(c.status))))))) : null,
        run.maps.length ? h("div", { class: "maps", "data-testid": "run-maps", "data-key": "maps" }, run.maps.map((m) =>
          h("div", { "data-testid": "map-progress", "data-state": m.state },
            h("strong", {}, `map ${m.state}: `),
            `${m.done} done, ${m.failed} failed, ${m.running} running, ${m.pending} pending of ${m.total}`,
            m.failing ? " (failing: draining)" : "",
            h("progress", { max: m.total, value: m.done + m.failed })))) : null),
      h("div", { class: "panel", "data-key": "data" }, h("h2", {}, "Data"), h("pre", { class: "json", "data-testid": "run-data" }, JSON.stringify(run.data, null, 2)))),
    ...(letters ? [letters] : []),
    h("div", { class: "panel", style: "margin-top:16px", "data-key": "history", "data-patch": true }, h("h2", { "data-key": "h" }, "History"), timeline));
}

// -- views: dead letters ------------------------------------------------------

// The buttons of one dead letter's row.
function letterActions(d) {
  return [
    h("button", { "data-testid": `inspect-${d.id}`, onclick: (e) => inspect(d.id, e.currentTarget) }, "Inspect"),
    h("button", { class: "primary", "data-testid": `replay-${d.id}`, disabled: d.status !== "open" || !!d.replay_refusal,
      title: d.replay_refusal || "", onclick: () => replay(d.id) }, "Replay"),
    h("button", { "data-testid": `resolve-${d.id}`, disabled: d.status !== "open", title: "close it without a replay; the run is left as it is",
      onclick: () => resolveLetter(d.id) }, "Resolve"),
  ];
}

function letterRow(d) {
  return h("tr", { "data-testid": "letter-row", "data-letter": d.id, "data-key": `letter-${d.id}` },
    h("td", { class: "mono" }, `#${d.id}`),
    h("td", {}, d.run_id ? h("a", { href: `#/runs/${d.run_id}` }, `${d.workflow}.${d.state}`) : "message"),
    h("td", { class: "wrap" }, d.reason), h("td", { class: "mono wrap" }, d.error ? d.error.type : ""), h("td", {}, fmtTime(d.created_at)),
    h("td", {}, h("span", { class: `status ${d.status}` }, d.status)),
    h("td", { class: "row-actions" }, h("div", { class: "actions" }, letterActions(d)),
      d.status === "open" && d.replay_refusal ? h("div", { class: "muted refusal", "data-testid": `refusal-${d.id}` }, `cannot replay: ${d.replay_refusal}`) : null));
}

function letterTable(letters) {
  return table("letters-table", "letters", ["id", "where", "reason", "error", "at", "status", ""], letters.map(letterRow));
}

// Opens (or closes) a dead letter's inspection in a row right under its own.
async function inspect(id, button) {
  const row = button.closest("tr");
  const open = row.nextElementSibling;
  if (open && open.getAttribute("data-attached-to") === row.getAttribute("data-key")) { open.remove(); return; }
  let d;
  try { d = await api(`/api/dead-letters/${id}`); } catch (err) { toast(`inspect failed: ${err.message}`, true); return; }
  const current = document.querySelector(`[data-testid=letter-row][data-letter="${id}"]`) || row;
  const close = h("button", { class: "close", "data-testid": "inspect-close", title: "close", onclick: (e) => e.currentTarget.closest("tr").remove() }, "×");
  current.after(h("tr", { class: "inspect-row", "data-attached-to": current.getAttribute("data-key"), "data-open": true },
    h("td", { colspan: current.children.length },
      h("div", { class: "inspect", "data-testid": "inspect", "data-letter": d.id },
        h("div", { class: "inspect-head" }, h("h2", {}, `Dead letter #${d.id}`), close),
        h("dl", { class: "kv" }, h("dt", {}, "source"), h("dd", {}, d.source), h("dt", {}, "reason"), h("dd", {}, d.reason),
          h("dt", {}, "attempts"), h("dd", {}, d.attempts), h("dt", {}, "status"), h("dd", {}, d.status + (d.resolved_by ? ` by ${d.resolved_by}` : "")),
          d.replay_refusal ? h("dt", {}, "replay") : null, d.replay_refusal ? h("dd", {}, `not possible: ${d.replay_refusal}`) : null),
        d.error ? h("pre", { class: "json" }, `${d.error.type}: ${d.error.message}\n\n${d.error.traceback || ""}`) : null,
        d.message ? h("pre", { class: "json" }, JSON.stringify(d.message, null, 2)) : null))));
}

async function replay(id) {
  try {
    const result = await post(`/api/dead-letters/${id}/replay`);
    toast(result.run ? `replayed #${id}: run is ${result.run.status}` : `replayed #${id}: message published again`);
    refresh();
  } catch (err) { toast(`replay refused: ${err.message}`, true); }
}

async function resolveLetter(id) {
  try {
    await post(`/api/dead-letters/${id}/resolve`);
    toast(`resolved #${id}`);
    refresh();
  } catch (err) { toast(`resolve refused: ${err.message}`, true); }
}

const LETTERS_PAGE = 100;

async function deadLettersView(root, params) {
  const status = params.status || "open";
  const offset = Math.max(0, parseInt(params.offset || "0", 10) || 0);
  const data = await api(`/api/dead-letters?status=${status}&offset=${offset}&limit=${LETTERS_PAGE}`);
  const go = (to) => { location.hash = `#/dead-letters${toQuery({ status: status === "open" ? "" : status, offset: to ? String(to) : "" })}`; };
  const chooser = h("select", { "data-testid": "letters-status", onchange: (e) => { location.hash = `#/dead-letters?status=${e.target.value}`; } },
    ["open", "replayed", "resolved", "all"].map((s) => h("option", { value: s, selected: s === status }, s)));
  const groups = data.groups.length ? table("groups-table", "groups",
    ["pattern", "count", "first seen", "last seen", "sample"].map((c) => th(c, c === "count" ? "num" : "")),
    data.groups.map((g) => h("tr", { "data-key": g.key }, h("td", { class: "mono wrap" }, g.key), h("td", { class: "num" }, fmtNum(g.count)),
      h("td", {}, fmtTime(g.first_seen)), h("td", {}, fmtTime(g.last_seen)), h("td", { class: "wrap" }, g.sample_error))))
    : h("div", { class: "empty", "data-key": "groups-empty" }, "none");
  const last = Math.min(offset + data.letters.length, data.total);
  const pager = h("div", { class: "pager", "data-testid": "letters-pager", "data-key": "pager" },
    h("button", { "data-testid": "letters-newer", disabled: offset === 0, onclick: () => go(Math.max(0, offset - LETTERS_PAGE)) }, "← Newer"),
    h("span", { "data-testid": "letters-shown" }, data.letters.length ? `${fmtNum(offset + 1)}–${fmtNum(last)} of ${fmtNum(data.total)}` : `0 of ${fmtNum(data.total)}`),
    h("button", { "data-testid": "letters-older", disabled: offset + data.letters.length >= data.total, onclick: () => go(offset + LETTERS_PAGE) }, "Older →"));
  root.replaceChildren(h("h1", { "data-key": "title" }, "Dead letters"), h("div", { class: "filters", "data-key": "filters" }, chooser),
    h("div", { class: "panel", "data-key": "groups", "data-patch": true }, h("h2", { "data-key": "h" }, "Failure patterns"), groups),
    h("div", { class: "panel", style: "margin-top:16px", "data-key": "letters", "data-patch": true }, h("h2", { "data-key": "h" }, "Letters"),
      data.letters.length ? letterTable(data.letters) : h("div", { class: "empty", "data-testid": "letters-table", "data-key": "letters-empty" }, "no dead letters"),
      pager));
}

// -- views: schedules ---------------------------------------------------------

async function scheduleAct(name, action) {
  try {
    const result = await post(`/api/schedules/${encodeURIComponent(name)}/${action}`);
    toast(action === "trigger" ? `triggered ${name}: run ${(result.runs || []).join(", ")}` : `${name}: ${action}d`);
    refresh();
  } catch (err) { toast(`${action} refused: ${err.message}`, true); }
}

async function schedulesView(root) {
  const schedules = await api("/api/schedules");
  const found = schedules.length ? table("schedules-table", "schedules", ["name", "workflow", "when", "source", "next fire", "last run", ""],
    schedules.map((s) => h("tr", { "data-testid": "schedule-row", "data-schedule": s.name, "data-key": s.name },
      h("td", { class: "mono" }, s.name), h("td", {}, s.workflow), h("td", {}, s.describe), h("td", {}, s.source),
      h("td", { "data-testid": "schedule-next" }, s.paused ? h("span", { class: "status suspended" }, "paused") : fmtTime(s.next_fire_at)),
      h("td", {}, s.last_run_id ? h("a", { href: `#/runs/${s.last_run_id}`, class: "mono" }, s.last_run_id.slice(0, 8)) : ""),
      h("td", { class: "row-actions" }, h("div", { class: "actions" },
        s.paused
          ? h("button", { "data-testid": `resume-${s.name}`, onclick: () => scheduleAct(s.name, "resume") }, "Resume")
          : h("button", { "data-testid": `pause-${s.name}`, onclick: () => scheduleAct(s.name, "pause") }, "Pause"),
        h("button", { class: "primary", "data-testid": `trigger-${s.name}`, onclick: () => scheduleAct(s.name, "trigger") }, "Trigger"))))))
    : h("div", { class: "empty", "data-testid": "schedules-table", "data-key": "empty" }, "no schedules");
  root.replaceChildren(h("h1", { "data-key": "title" }, "Schedules"), h("div", { class: "panel", "data-key": "schedules", "data-patch": true }, found));
}

// -- views: workflows ---------------------------------------------------------

async function workflowsView(root) {
  const workflows = await api("/api/workflows");
  root.replaceChildren(h("h1", { "data-key": "title" }, "Workflows"),
    ...(workflows.length ? workflows.map((w) => h("div", { class: "panel workflow", "data-testid": "workflow", "data-workflow": w.name, "data-key": `${w.name}.${w.version}` },
      h("h2", {}, `${w.name} v${w.version}`),
      w.triggers.length ? h("p", { class: "muted" }, `started by ${w.triggers.join(", ")}`) : null,
      h("div", { class: "graph" }, drawGraph({ ...w.graph, current: [], visited: [], failed: [] }))))
      : [h("div", { class: "panel empty", "data-key": "empty" }, "start the dashboard with --app to see the workflows")]));
}

// -- routing and live updates -------------------------------------------------

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const parts = (path || "/").split("/").filter(Boolean);
  if (parts[0] === "runs" && parts[1]) return { view: runView, nav: "runs", params: { ...params, id: decodeURIComponent(parts[1]) } };
  if (parts[0] === "runs") return { view: runsView, nav: "runs", params };
  if (parts[0] === "dead-letters") return { view: deadLettersView, nav: "dead-letters", params };
  if (parts[0] === "schedules") return { view: schedulesView, nav: "schedules", params };
  if (parts[0] === "workflows") return { view: workflowsView, nav: "workflows", params };
  return { view: overviewView, nav: "overview", params };
}

let rendering = null;
let drawn = null; // the address and range of what the page shows
async function refresh() {
  const { view, nav, params } = route();
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === nav);
  const root = document.getElementById("view");
  const token = Symbol("render");
  const address = `${location.hash}|${state.range}`;
  rendering = token;
  try {
    const staging = h("div", {});
    await view(staging, params);
    if (rendering !== token) return;
    if (drawn === address) {
      // A live update of the same view: patch what changed, keep the rest.
      morph.patchChildren(root, staging);
    } else {
      root.replaceChildren(...staging.childNodes);
      drawn = address;
    }
    root.dataset.loaded = String(Date.now());
  } catch (err) {
    if (rendering === token) {
      root.replaceChildren(h("div", { class: "panel error", "data-testid": "error" }, err.message));
      drawn = null;
    }
  }
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 250);
}

async function listen() {
  const live = document.getElementById("live");
  let delay = 1000;
  for (;;) {
    try {
      const response = await fetch("/api/stream", { headers: headers() });
      if (!response.ok || !response.body) throw new Error(String(response.status));
      live.classList.add("on");
      delay = 1000;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let seen = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = message.split("\n").find((line) => line.startsWith("data: "));
          if (!data) continue;
          const stamp = JSON.parse(data.slice(6));
          document.getElementById("dl-count").textContent = stamp.open_dead_letters || "";
          if (seen !== null) scheduleRefresh();
          seen = stamp;
        }
      }
    } catch (_) { /* reconnect below */ }
    live.classList.remove("on");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function start() {
  const hash = location.hash;
  const match = hash.match(/^#token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("legato-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + "#/");
  }
  state.token = sessionStorage.getItem("legato-token");
  state.range = sessionStorage.getItem("legato-range") || "24h";
  const range = document.getElementById("range");
  range.value = state.range;
  range.addEventListener("change", () => { state.range = range.value; sessionStorage.setItem("legato-range", state.range); refresh(); });
  window.addEventListener("hashchange", refresh);
  refresh();
  listen();
}

start();
