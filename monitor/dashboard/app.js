// Model monitor dashboard: reads /api/overview and /api/history every few seconds and renders them.
// No framework, no build step, no network access beyond the monitor itself.
"use strict";

const REFRESH_MS = 5000;
const DRIFT_ROWS = 15;  // firing streams sort first
const ACTIONS = {
  rollback: "Roll back to the previous model version",
  retrain: "Retrain the model on recent data",
  investigate: "Investigate the change (data source, product change, bug?)",
  none: "No action needed",
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
function num(x) {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString("en-US");
  if (a >= 10) return x.toFixed(1);
  return x.toPrecision(3);
}
function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const ago = Math.max(0, (Date.now() - d.getTime()) / 1000);
  const rel = ago < 90 ? Math.round(ago) + " s ago" : ago < 5400 ? Math.round(ago / 60) + " min ago" : Math.round(ago / 3600) + " h ago";
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC (" + rel + ")";
}
function healthWord(h) { return { healthy: "Healthy", watch: "Watch", act: "Act" }[h] || h; }

function sparkline(points, opts) {
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark" + (opts && opts.bad ? " bad" : ""));
  svg.setAttribute("viewBox", "0 0 130 28");
  svg.setAttribute("preserveAspectRatio", "none");
  const vals = (points || []).filter((p) => p[1] !== null && p[1] !== undefined);
  if (vals.length < 2) {
    const t = document.createElementNS(svgNS, "text");
    t.setAttribute("x", "0"); t.setAttribute("y", "18"); t.setAttribute("font-size", "11"); t.setAttribute("fill", "#656d76");
    t.textContent = "collecting…";
    svg.append(t);
    return svg;
  }
  const t0 = vals[0][0], t1 = vals[vals.length - 1][0];
  let lo = Math.min(...vals.map((p) => p[1])), hi = Math.max(...vals.map((p) => p[1]));
  if (opts && opts.zero) lo = Math.min(lo, 0);
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const xy = vals.map((p) => {
    const x = t1 > t0 ? ((p[0] - t0) / (t1 - t0)) * 128 + 1 : 1;
    const y = 26 - ((p[1] - lo) / (hi - lo)) * 24;
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", xy.join(" "));
  svg.append(line);
  const title = document.createElementNS(svgNS, "title");
  title.textContent = "min " + num(lo) + ", max " + num(hi) + " over " + vals.length + " samples";
  svg.append(title);
  return svg;
}

function kpi(label, value, series, opts) {
  return el("div", { class: "kpi" }, el("span", { class: "label" }, label),
    el("div", { class: "row" }, el("span", { class: "value" }, value), sparkline(series, opts)));
}

// The estimate with its 95% band, and CBPE's F1 beside it when there is one.
function estimate(m) {
  const band = m.estimated_accuracy_band;
  const f1 = (m.estimated_metrics || {}).f1;
  return el("span", {}, pct(m.estimated_accuracy),
    band ? el("span", { class: "muted band", title: "95% band from the window size" },
      " (" + pct(band[0]) + "–" + pct(band[1]) + ")") : null,
    f1 !== undefined && f1 !== null ? el("span", { class: "muted band" }, " F1 " + pct(f1)) : null);
}

function renderModel(m, series, span) {
  const s = series || {};
  const last = (name) => { const pts = s[name] || []; return pts.length ? pts[pts.length - 1][1] : null; };
  const kpis = [
    kpi("Accuracy (labelled, recent)", pct(m.accuracy), s.accuracy),
    kpi("Estimated accuracy (no labels)", estimate(m), s.estimated_accuracy),
    kpi("Predictions per second", num(last("events_per_s")), s.events_per_s, { zero: true }),
    kpi("Largest drift effect", num(last("max_drift_effect")), s.max_drift_effect, { zero: true, bad: m.health !== "healthy" }),
    kpi("Label coverage", pct(m.label_coverage), s.label_coverage),
  ];
  for (const [name, value] of Object.entries(m.outcomes || {})) {
    kpis.push(kpi("Business: " + name + " (mean)", num(value), s["outcome:" + name]));
  }
  const changes = (m.changes || []).slice(0, 6).map((a) =>
    el("li", {}, el("span", { class: "badge " + a.status }, a.status), " ", when(a.emitted_at), ": ", a.message || a.key));
  return el("article", { class: "card " + m.health, "data-model": m.model + "/" + m.version },
    el("div", { class: "card-head" },
      el("h3", {}, m.model, " ", el("span", { class: "muted" }, m.version)),
      el("span", { class: "badge " + m.health, "data-health": m.health }, healthWord(m.health))),
    el("p", { class: "reason" }, m.reason),
    el("div", { class: "muted" }, num(m.events) + " predictions monitored · sparklines: last " + span),
    el("div", { class: "kpis" }, kpis),
    el("strong", {}, "What changed and when"),
    changes.length ? el("ul", { class: "changes" }, changes) : el("p", { class: "muted" }, "Nothing has changed yet."));
}

function renderAlerts(alerts) {
  const tbody = document.querySelector("#alerts tbody");
  tbody.replaceChildren();
  if (!alerts.length) {
    tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No alerts yet.")));
    return;
  }
  for (const a of alerts) {
    const rec = a.recommendation || "none";
    tbody.append(el("tr", { class: a.status, "data-key": a.key },
      el("td", {}, when(a.emitted_at)),
      el("td", {}, el("span", { class: "badge " + a.status }, a.status)),
      el("td", {}, a.severity),
      el("td", {}, a.model + " " + a.model_version),
      el("td", {}, a.message || a.key),
      el("td", {}, el("span", { class: "action " + rec }, ACTIONS[rec] || rec))));
  }
}

function renderFairness(rows) {
  const box = document.getElementById("fairness");
  box.replaceChildren();
  if (!rows || !rows.length) {
    box.append(el("p", { class: "muted" }, "No fairness attributes configured."));
    return;
  }
  const body = rows.map((r) => el("tr", { class: r.firing ? "firing" : "" },
    el("td", {}, r.model + " " + r.version), el("td", {}, r.attribute), el("td", {}, r.group + " vs " + r.reference),
    el("td", {}, r.metric), el("td", {}, num(r.gap)), el("td", {}, "[" + num(r.low) + ", " + num(r.high) + "]"),
    el("td", {}, r.firing ? el("span", { class: "badge firing" }, "gap") : "within bounds")));
  box.append(el("table", {}, el("thead", {}, el("tr", {},
    ["Model", "Attribute", "Group", "Metric", "Gap", "95% interval", "Status"].map((h) => el("th", {}, h)))),
    el("tbody", {}, body)));
}

function renderDrift(models, thresholds) {
  const box = document.getElementById("drift");
  box.replaceChildren();
  for (const m of models) {
    if (!m.drift || !m.drift.length) continue;
    const shown = m.drift.slice(0, DRIFT_ROWS);
    const rows = shown.map((d) => {
      const limit = d.kind === "categorical" ? thresholds.categorical_distance : thresholds.numeric_effect;
      const ratio = Math.min(1, (d.effect || 0) / limit);
      return el("tr", { class: d.firing ? "firing" : "" },
        el("td", {}, d.feature), el("td", {}, d.segment), el("td", {}, d.kind),
        el("td", {}, el("span", { class: "bar" + (d.effect >= limit ? " over" : "") },
          el("span", { style: "width:" + (100 * ratio).toFixed(0) + "%" })), " ", num(d.effect)),
        el("td", {}, pct(d.missing_ratio)), el("td", {}, num(d.events)),
        el("td", {}, d.firing ? el("span", { class: "badge firing" }, "drifting") : "stable"));
    });
    const more = m.drift_streams > shown.length ? " (largest " + shown.length + " of " + m.drift_streams + " streams; all in /api/overview)" : "";
    box.append(el("h3", {}, m.model + " " + m.version + more),
      el("table", {}, el("thead", {}, el("tr", {},
        ["Feature", "Segment", "Type", "Effect", "Missing", "Events", "Status"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows)));
  }
  if (!box.children.length) box.append(el("p", { class: "muted" }, "No streams yet."));
}

async function getJSON(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(path + ": HTTP " + res.status);
  return res.json();
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [ov, hist] = await Promise.all([getJSON("api/overview"), getJSON("api/history")]);
    const minutes = (hist.interval_s * hist.points) / 60;
    const span = minutes >= 120 ? (minutes / 60).toFixed(0) + " h" : minutes.toFixed(0) + " min";
    const models = document.getElementById("models");
    models.replaceChildren();
    if (!ov.models.length) models.append(el("p", { class: "muted" }, "No prediction events yet."));
    for (const m of ov.models) models.append(renderModel(m, hist.series[m.model + "/" + m.version], span));
    renderAlerts(ov.alerts || []);
    renderFairness(ov.fairness);
    renderDrift(ov.models, ov.thresholds);
    status.textContent = (ov.ready ? "ready" : "NOT READY") + " · partitions " + (ov.partitions.join(", ") || "none") +
      " · history: one point every " + hist.interval_s + " s, " + hist.points + " points kept · updated " +
      new Date(ov.generated_at * 1000).toISOString().slice(11, 19) + " UTC";
    document.body.dataset.loaded = "true";
  } catch (err) {
    status.textContent = "cannot reach the monitor: " + err.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
