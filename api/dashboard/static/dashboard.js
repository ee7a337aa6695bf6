// shopstream dashboard: every figure comes from /v1/dashboard/... with the user's API key.
//
// The key comes from the URL fragment (#key=..., which browsers never send to a server) or
// is typed once; it is kept in localStorage and sent as X-API-Key on every request. Alert
// transitions arrive live from /v1/alerts/stream, read with fetch() streaming because
// EventSource cannot send a header.
"use strict";

const KEY_STORE = "shopstream.apiKey";
const SEVERITIES = ["critical", "high", "warning"];
const SEVERITY_COLOURS = { critical: "#c62828", high: "#ef6c00", warning: "#f2b705", ok: "#9aa5b1" };
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const PIPELINE_EVERY_MS = 10000;
const STOCK_EVERY_MS = 15000;
const SALES_EVERY_MS = 30000;

const state = { key: null, lastSeq: 0, sales: null, streamAbort: null };
// Set once per page load: a test can tell a live update from a reload.
window.dashboardLoadedAt = Date.now();

// --- the key -------------------------------------------------------------------------------

function takeKeyFromFragment() {
  const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (match) {
    localStorage.setItem(KEY_STORE, decodeURIComponent(match[1]));
    // Out of the address bar and the history: the key is not for screenshots or bookmarks.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(KEY_STORE);
}

function askForKey(message) {
  document.getElementById("main").hidden = true;
  const form = document.getElementById("key-form");
  if (message) document.getElementById("key-message").textContent = message;
  form.hidden = false;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const response = await fetch(path, { headers: { "X-API-Key": state.key }, cache: "no-store" });
  if (response.ok) return response.json();
  let message = `${response.status} ${response.statusText}`;
  try {
    const problem = await response.json();
    if (problem && problem.message) message = problem.message;
  } catch (_) { /* not JSON: keep the status line */ }
  if (response.status === 401 || response.status === 403) {
    localStorage.removeItem(KEY_STORE);
    askForKey(`The key was refused: ${message}. Enter a key with the read scope.`);
  }
  throw new ApiError(response.status, message);
}

// --- formatting: figures are shown exactly as the API sends them --------------------------

function groups(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function fmtDecimal(text) {
  if (text === null || text === undefined) return "–";
  const negative = text.startsWith("-");
  const [whole, fraction] = (negative ? text.slice(1) : text).split(".");
  return (negative ? "-" : "") + groups(whole) + (fraction !== undefined ? "." + fraction : "");
}

const fmtMoney = fmtDecimal;
const fmtInt = (n) => (n === null || n === undefined ? "–" : groups(String(n)));
const fmtPct = (text) => (text === null || text === undefined ? "–" : fmtDecimal(text) + " %");

function fmtTime(iso) {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", "").replace("+00:00", "");
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min ago`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h ago`;
  return `${(seconds / 86400).toFixed(1)} days ago`;
}

function setText(testid, text) {
  const el = document.querySelector(`[data-testid="${testid}"]`);
  if (el.textContent !== text) {
    el.textContent = text;
    return true;
  }
  return false;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells);
      return tr;
    }),
  );
}

function severityBadge(severity) {
  const td = document.createElement("td");
  if (severity) {
    const span = document.createElement("span");
    span.className = `sev ${severity}`;
    span.textContent = severity;
    td.append(span);
  } else {
    td.textContent = "ok";
  }
  return td;
}

// --- sections ------------------------------------------------------------------------------

function section(id) {
  return document.getElementById(id);
}

async function load(id, render) {
  const el = section(id);
  const message = el.querySelector(":scope > .message");
  try {
    await render();
    message.hidden = true;
    el.dataset.state = "ready";
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return;
    message.textContent = err.message;
    message.hidden = false;
    el.dataset.state = "error";
  }
}

function plot(id, traces, layout) {
  const base = {
    margin: { t: 36, r: 16, b: 44, l: 64 },
    font: { family: "system-ui, sans-serif", size: 12 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    legend: { orientation: "h", y: -0.2 },
  };
  return Plotly.react(id, traces, { ...base, ...layout }, PLOT_CONFIG);
}

// Sales

async function renderSales() {
  const from = document.getElementById("sales-from").value;
  const to = document.getElementById("sales-to").value;
  const query = new URLSearchParams();
  if (from) query.set("date_from", from);
  if (to) query.set("date_to", to);
  const view = await api(`/v1/dashboard/sales?${query}`);
  state.sales = view;
  document.getElementById("sales-from").value = view.range.date_from;
  document.getElementById("sales-to").value = view.range.date_to;
  document.getElementById("sales-available").textContent = view.available
    ? `sales from ${view.available.date_from} to ${view.available.date_to} (UTC days)`
    : "";
  document.getElementById("sales-today-date").textContent = view.today.order_date;
  setText("sales-today-revenue", fmtMoney(view.today.revenue));
  setText("sales-today-orders", fmtInt(view.today.orders));
  setText("sales-today-units", fmtInt(view.today.units));
  setText("sales-today-margin", fmtPct(view.today.margin_pct));
  setText("sales-range-revenue", fmtMoney(view.totals.revenue));
  setText("sales-range-orders", fmtInt(view.totals.orders));
  setText("sales-range-profit", fmtMoney(view.totals.profit));
  setText("sales-range-margin", fmtPct(view.totals.margin_pct));
  document.getElementById("sales-refreshed").textContent = view.refreshed_at
    ? `gold.sales_daily last written ${fmtTime(view.refreshed_at)} UTC`
    : "";

  const days = view.days.map((d) => d.order_date);
  await plot(
    "chart-sales-daily",
    [
      { type: "scatter", mode: "lines+markers", name: "orders", x: days, y: view.days.map((d) => d.orders) },
      { type: "scatter", mode: "lines+markers", name: "units", x: days, y: view.days.map((d) => d.units) },
      {
        type: "scatter", mode: "lines+markers", name: "margin %", yaxis: "y2", line: { dash: "dot" },
        x: days, y: view.days.map((d) => (d.margin_pct === null ? null : Number(d.margin_pct))),
      },
    ],
    {
      title: { text: "Orders, units and margin by day" },
      yaxis: { title: { text: "count" }, rangemode: "tozero" },
      yaxis2: { title: { text: "margin %" }, overlaying: "y", side: "right", rangemode: "tozero" },
      xaxis: { type: "date" },
    },
  );
  await renderSalesBreakdown();
}

async function renderSalesBreakdown() {
  const view = state.sales;
  if (!view) return;
  const dimension = document.getElementById("sales-dimension").value;
  document.getElementById("sales-dimension-name").textContent = dimension.replace("_", " ");
  const points = view.by_day[dimension];
  const keys = [...new Set(points.map((p) => p.key))].sort();
  const traces = keys.map((key) => {
    const mine = points.filter((p) => p.key === key);
    return { type: "bar", name: key, x: mine.map((p) => p.order_date), y: mine.map((p) => Number(p.revenue)) };
  });
  if (view.batch.available && view.batch.days.length) {
    traces.push({
      type: "scatter", mode: "markers", name: "daily batch (marts)",
      marker: { symbol: "diamond", size: 10, color: "#17202e" },
      x: view.batch.days.map((d) => d.order_date), y: view.batch.days.map((d) => Number(d.revenue)),
    });
  }
  await plot("chart-sales-revenue", traces, {
    title: { text: `Revenue by day and ${dimension.replace("_", " ")} (stream), batch days marked` },
    barmode: "stack",
    yaxis: { title: { text: "revenue" }, rangemode: "tozero" },
    xaxis: { type: "date" },
  });
  fillTable(
    "sales-breakdown",
    view.breakdowns[dimension].map((s) => [
      cell(s.key), cell(fmtMoney(s.revenue), "num"), cell(fmtInt(s.orders), "num"), cell(fmtInt(s.units), "num"),
      cell(fmtMoney(s.profit), "num"), cell(fmtPct(s.margin_pct), "num"),
    ]),
  );
  const note = document.getElementById("sales-batch-message");
  note.hidden = view.batch.available;
  note.textContent = view.batch.message || "";
  fillTable(
    "sales-batch",
    view.batch.days.map((d) => [
      cell(d.order_date), cell(fmtMoney(d.revenue), "num"), cell(fmtMoney(d.stream_revenue), "num"),
      cell(fmtInt(d.units), "num"), cell(fmtMoney(d.profit), "num"), cell(fmtPct(d.margin_pct), "num"),
      cell(d.matches_stream ? "yes" : "no (stream moved on, or see reconciliation)", d.matches_stream ? "good" : "bad"),
    ]),
  );
}

// Customers

async function renderCustomers() {
  const select = document.getElementById("customers-as-of");
  const query = select.value ? `?as_of=${select.value}` : "";
  const view = await api(`/v1/dashboard/customers${query}`);
  select.replaceChildren(
    ...view.as_of_dates.map((d) => {
      const option = document.createElement("option");
      option.value = d;
      option.textContent = d;
      option.selected = d === view.as_of_date;
      return option;
    }),
  );
  setText("customers-total", fmtInt(view.customers));
  setText("customers-revenue", fmtMoney(view.revenue));
  setText("customers-segments", fmtInt(view.segments.length));
  const names = view.segments.map((s) => s.segment);
  await plot(
    "chart-customers-count",
    [{ type: "bar", x: names, y: view.segments.map((s) => s.customers), marker: { color: "#2f6fde" } }],
    { title: { text: `Customers per RFM segment, as of ${view.as_of_date}` }, yaxis: { title: { text: "customers" } } },
  );
  await plot(
    "chart-customers-revenue",
    [{ type: "pie", hole: 0.45, labels: names, values: view.segments.map((s) => Number(s.revenue)), sort: false }],
    { title: { text: "Revenue to date per segment" }, legend: { orientation: "v" } },
  );
  fillTable(
    "customers-table",
    view.segments.map((s) => [
      cell(s.segment), cell(fmtInt(s.customers), "num"), cell(fmtPct(s.share_pct), "num"),
      cell(fmtMoney(s.revenue), "num"), cell(s.avg_recency_days, "num"), cell(s.avg_frequency, "num"),
      cell(fmtMoney(s.avg_monetary), "num"),
    ]),
  );
}

// Stock: the lake part, and the live alert counts from the ops database

async function renderStock() {
  await renderAlerts(false);
  const lakeMessage = section("stock").querySelector(".lake-message");
  let view;
  try {
    view = await api("/v1/dashboard/stock");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      // The ops database's part stands on its own: show it, and say what the lake lacks.
      lakeMessage.textContent = err.message;
      lakeMessage.hidden = false;
      return;
    }
    throw err;
  }
  lakeMessage.hidden = true;
  setText("stock-rows", fmtInt(view.rows));
  setText("stock-units", fmtInt(view.units_on_hand));
  setText("stock-below-reorder", fmtInt(view.below_reorder_point));
  const order = [...SEVERITIES, "ok"];
  // Buckets follow the rule's edges: below critical, below high, below the horizon, beyond.
  const bucketColours = view.cover.map((_, i) => SEVERITY_COLOURS[order[i]] || SEVERITY_COLOURS.ok);
  await plot(
    "chart-stock-cover",
    [{ type: "bar", x: view.cover.map((b) => b.label), y: view.cover.map((b) => b.rows), marker: { color: bucketColours } }],
    {
      title: { text: `Days of cover over ${fmtInt(view.rows)} product x warehouse rows (gold)` },
      yaxis: { title: { text: "rows" } },
    },
  );
  fillTable(
    "stock-lowest",
    view.lowest_cover.map((r) => [
      cell(r.product_name ? `${r.product_name} (${r.product_id})` : String(r.product_id)),
      cell(String(r.warehouse_id)), cell(r.category || "–"), cell(fmtInt(r.on_hand), "num"),
      cell(fmtInt(r.reorder_point), "num"), cell(fmtInt(r.units_out_7d), "num"),
      cell(r.days_of_cover === null ? "∞" : r.days_of_cover, "num"), severityBadge(r.severity),
    ]),
  );
  document.getElementById("stock-refreshed").textContent = view.refreshed_at
    ? `gold.inventory_status last written ${fmtTime(view.refreshed_at)} UTC; severity in the lake: ` +
      order.map((s) => `${s} ${fmtInt(view.by_severity[s] || 0)}`).join(", ")
    : "";
}

async function renderAlerts(flash) {
  const view = await api("/v1/dashboard/alerts");
  for (const severity of SEVERITIES) {
    const changed = setText(`alerts-open-${severity}`, fmtInt(view.open_by_severity[severity]));
    const kpi = document.querySelector(`[data-testid="alerts-open-${severity}"]`).parentElement;
    if (changed && flash) {
      kpi.classList.remove("flash");
      void kpi.offsetWidth; // restart the animation
      kpi.classList.add("flash");
    }
  }
  setText("alerts-open-total", fmtInt(view.open_total));
  await plot(
    "chart-stock-alerts",
    [
      {
        type: "bar", name: "open", x: SEVERITIES, y: SEVERITIES.map((s) => view.open_by_severity[s]),
        marker: { color: SEVERITIES.map((s) => SEVERITY_COLOURS[s]) },
      },
      {
        type: "bar", name: "acknowledged", x: SEVERITIES, y: SEVERITIES.map((s) => view.acknowledged_by_severity[s]),
        marker: { color: SEVERITIES.map((s) => SEVERITY_COLOURS[s]), opacity: 0.4 },
      },
    ],
    { title: { text: "Open low-stock alerts by severity (live)" }, barmode: "stack", yaxis: { title: { text: "alerts" } } },
  );
  if (!state.lastSeq) {
    const feed = document.getElementById("stock-feed");
    feed.replaceChildren(...view.recent.map((t) => feedItem(t, false)));
    state.lastSeq = view.latest_seq;
  }
}

function feedItem(t, isNew) {
  const li = document.createElement("li");
  li.dataset.seq = t.seq;
  li.dataset.alertId = t.alert_id;
  if (isNew) li.className = "new";
  const badge = document.createElement("span");
  badge.className = `sev ${t.severity || "warning"}`;
  badge.textContent = t.severity || "resolved";
  const product = t.product_name || (t.product && t.product.name) || `product ${t.product_id ?? t.product.product_id}`;
  const warehouse = t.warehouse_code || (t.warehouse && t.warehouse.code) || `warehouse ${t.warehouse_id}`;
  const cover = t.days_of_cover === null ? "no sales in 7 d" : `${t.days_of_cover} d of cover`;
  const text = document.createTextNode(` ${t.transition}: ${product} at ${warehouse}, ${t.on_hand} on hand, ${cover} `);
  const when = document.createElement("time");
  when.textContent = fmtTime(t.transitioned_at);
  li.append(badge, text, when);
  return li;
}

// The live stream of transitions ----------------------------------------------------------

function setLive(on) {
  const el = document.getElementById("live");
  el.className = on ? "live on" : "live off";
  el.textContent = on ? "live" : "live: reconnecting";
}

let alertsRefresh = null;
function onTransition(event) {
  state.lastSeq = Math.max(state.lastSeq, event.seq);
  const feed = document.getElementById("stock-feed");
  if (!feed.querySelector(`li[data-seq="${event.seq}"]`)) feed.prepend(feedItem(event, true));
  while (feed.children.length > 50) feed.lastElementChild.remove();
  // The counts come from the database, not from adding events up: exact after any burst.
  clearTimeout(alertsRefresh);
  alertsRefresh = setTimeout(() => renderAlerts(true).catch(() => {}), 150);
}

function handleFrame(frame) {
  let id = null;
  let name = "message";
  const data = [];
  for (const line of frame.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (name === "transition" && data.length) {
    const event = JSON.parse(data.join("\n"));
    if (id !== null) event.seq = Number(id);
    onTransition(event);
  }
}

async function follow() {
  for (;;) {
    try {
      const response = await fetch("/v1/alerts/stream", {
        headers: { "X-API-Key": state.key, "Last-Event-ID": String(state.lastSeq) },
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) return;
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      setLive(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          handleFrame(frame);
        }
      }
    } catch (_) { /* reconnect below, from the last seq seen: nothing is missed */ }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// Data quality

async function renderQuality() {
  const select = document.getElementById("quality-table");
  const chosen = select.value;
  const view = await api(`/v1/dashboard/quality${chosen ? `?table=${encodeURIComponent(chosen)}` : ""}`);
  const options = [["", "every checked table"], ...view.tables.map((t) => [t, t])];
  select.replaceChildren(
    ...options.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      option.selected = value === chosen;
      return option;
    }),
  );
  const missing = document.getElementById("quality-missing");
  missing.hidden = view.missing.length === 0;
  missing.textContent = view.missing.length
    ? `not built yet: ${view.missing.join(", ")} (the daily batch writes them)`
    : "";
  const scores = view.scores || [];
  await plot(
    "chart-quality-scores",
    scores.map((t) => ({
      type: "scatter", mode: "lines+markers", name: t.table_name,
      x: t.points.map((p) => p.run_date), y: t.points.map((p) => p.score),
      text: t.points.map((p) => `${p.passed} of ${p.evaluated} expectations`),
    })),
    {
      title: { text: "Quality score per table by run date (passed / evaluated)" },
      yaxis: { range: [0, 1.05], tickformat: ".0%" },
      xaxis: dayAxis(scores.flatMap((t) => t.points.map((p) => p.run_date))),
    },
  );
  const recon = view.reconciliation;
  const latest = recon && recon.latest;
  setText("recon-date", latest ? latest.run_date : "not run yet");
  setText("recon-compared", latest ? fmtInt(latest.compared) : "–");
  setText("recon-mismatches", latest ? fmtInt(latest.mismatches) : "–");
  const mismatches = document.querySelector('[data-testid="recon-mismatches"]');
  mismatches.className = `value ${latest && latest.mismatches ? "bad" : "good"}`;
  const table = document.getElementById("recon-mismatched");
  table.hidden = !(recon && recon.mismatched.length);
  fillTable(
    "recon-mismatched",
    (recon ? recon.mismatched : []).map((m) => [
      cell(m.order_date), cell(m.category), cell(m.region), cell(m.customer_segment), cell(m.measure),
      cell(fmtDecimal(m.stream_value), "num"), cell(fmtDecimal(m.batch_value), "num"), cell(fmtDecimal(m.source_value), "num"),
    ]),
  );
  fillTable(
    "quality-runs",
    (view.runs || []).map((r) => [
      cell(r.run_date), cell(fmtTime(r.started_at)), cell(r.status, `status-${r.status}`),
      stepsCell(r.steps),
    ]),
  );
}

// A date axis of whole days: half a day of margin either side (one run date alone would
// otherwise get an axis of milliseconds), a tick per day while there are few.
const DAY_MS = 86400000;
function dayAxis(isoDates) {
  const times = isoDates.map((d) => Date.parse(`${d}T00:00:00Z`));
  if (!times.length) return { type: "date" };
  const first = Math.min(...times);
  const last = Math.max(...times);
  const iso = (t) => new Date(t).toISOString().slice(0, 13).replace("T", " ") + ":00";
  return {
    type: "date",
    range: [iso(first - DAY_MS / 2), iso(last + DAY_MS / 2)],
    tickformat: "%b %d",
    dtick: last - first <= 14 * DAY_MS ? DAY_MS : undefined,
  };
}

// One line per step; an error (a reconciliation's can list every differing key) is cut to
// its start, the whole of it one click away.
const ERROR_SHOWN = 160;
function stepsCell(steps) {
  const td = document.createElement("td");
  td.className = "wrap";
  for (const s of steps) {
    const line = document.createElement("div");
    const head = document.createElement("span");
    head.className = `status-${s.status}`;
    head.textContent = `${s.step} ${s.status}`;
    line.append(head, ` (${s.duration_s.toFixed(1)} s)`);
    if (s.error) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = s.error.length > ERROR_SHOWN ? `${s.error.slice(0, ERROR_SHOWN)}…` : s.error;
      details.append(summary);
      if (s.error.length > ERROR_SHOWN) {
        const full = document.createElement("pre");
        full.textContent = s.error;
        details.append(full);
      }
      line.append(details);
    }
    td.append(line);
  }
  return td;
}

// Pipeline

async function renderPipeline() {
  const view = await api("/v1/dashboard/pipeline");
  const replaying = document.getElementById("pipeline-replaying");
  replaying.hidden = view.replaying.length === 0;
  replaying.textContent = view.replaying.length
    ? `replay in progress: ${view.replaying.join(", ")} far behind the log (see the lag below)`
    : "";
  const kafka = document.getElementById("pipeline-kafka");
  kafka.hidden = !view.kafka;
  kafka.textContent = view.kafka || "";
  setText("engine-lag", view.engine.lag === null ? view.engine.status : `${fmtInt(view.engine.lag)} (${view.engine.status})`);
  setText("engine-heartbeat", fmtAge(view.engine.heartbeat_age_s));
  setText(
    "batch-status",
    view.batch
      ? `${view.batch.run_date}: ${view.batch.status}` + (view.batch.failed_steps.length ? ` (${view.batch.failed_steps.join(", ")})` : "")
      : "not run yet",
  );
  document.querySelector('[data-testid="batch-status"]').className =
    `value ${view.batch ? `status-${view.batch.status}` : ""}`;
  fillTable(
    "pipeline-queries",
    view.queries.map((q) => [
      cell(q.query), cell(q.status, `status-${q.status.replace(" ", "-")}`),
      cell(q.lag === null ? "–" : fmtInt(q.lag), "num"), cell(q.last_batch_id === null ? "–" : String(q.last_batch_id), "num"),
      cell(fmtTime(q.last_batch_at)), cell(q.writer || "no driver"),
    ]),
  );
  const tables = view.tables.filter((t) => t.exists).sort((a, b) => b.age_s - a.age_s);
  await plot(
    "chart-pipeline-freshness",
    [{
      type: "bar", orientation: "h", y: tables.map((t) => t.table),
      // A log axis cannot place 0 s (a commit this instant): drawn at 0.1 s, labelled as is.
      x: tables.map((t) => Math.max(t.age_s, 0.1)),
      text: tables.map((t) => fmtAge(t.age_s)), textposition: "auto",
      marker: { color: tables.map((t) => (t.table.startsWith("gold.") ? "#2f6fde" : "#7aa6f0")) },
    }],
    {
      title: { text: "Freshness: seconds since each table's last commit" },
      xaxis: { type: "log", title: { text: "seconds (log scale)" } },
      margin: { t: 36, r: 16, b: 44, l: 230 },
      height: Math.max(420, 22 * tables.length + 80),
    },
  );
  const absent = view.tables.filter((t) => !t.exists).map((t) => t.table);
  document.getElementById("pipeline-refreshed").textContent =
    `checked ${fmtTime(view.checked_at)} UTC` + (absent.length ? `; not written yet: ${absent.join(", ")}` : "");
}

// --- start ---------------------------------------------------------------------------------

function start() {
  document.getElementById("main").hidden = false;
  document.getElementById("key-form").hidden = true;
  load("sales", renderSales);
  load("customers", renderCustomers);
  load("stock", renderStock).then(() => {
    if (!state.streamStarted) {
      state.streamStarted = true;
      follow();
    }
  });
  load("quality", renderQuality);
  load("pipeline", renderPipeline);
  setInterval(() => load("pipeline", renderPipeline), PIPELINE_EVERY_MS);
  setInterval(() => load("stock", renderStock), STOCK_EVERY_MS);
  // Today's figures move with the shop; the chosen range stays (the inputs hold it).
  setInterval(() => load("sales", renderSales), SALES_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = document.getElementById("key-input").value.trim();
    if (!key) return;
    localStorage.setItem(KEY_STORE, key);
    location.reload();
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    location.reload();
  });
  document.getElementById("sales-range").addEventListener("submit", (e) => {
    e.preventDefault();
    load("sales", renderSales);
  });
  document.getElementById("sales-dimension").addEventListener("change", () => load("sales", renderSalesBreakdown));
  document.getElementById("customers-as-of").addEventListener("change", () => load("customers", renderCustomers));
  document.getElementById("quality-table").addEventListener("change", () => load("quality", renderQuality));

  state.key = takeKeyFromFragment();
  if (!state.key) {
    askForKey();
    return;
  }
  start();
});
