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

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// A trend line with its range: the smallest and largest value drawn, as labels beside the line.
// Fewer than two points: no line at all (the value beside it is real; the trend comes with the next samples).
function trend(points, opts) {
  const vals = (points || []).filter((p) => p[1] !== null && p[1] !== undefined);
  if (vals.length < 2) return null;
  const fmt = (opts && opts.fmt) || num;
  const t0 = vals[0][0], t1 = vals[vals.length - 1][0];
  let lo = Math.min(...vals.map((p) => p[1])), hi = Math.max(...vals.map((p) => p[1]));
  if (opts && opts.zero) lo = Math.min(lo, 0);
  const flat = hi - lo < 1e-9;
  const svg = svgEl("svg", { class: "spark" + (opts && opts.bad ? " bad" : ""), viewBox: "0 0 100 30", preserveAspectRatio: "none" });
  const xy = vals.map((p) => {
    const x = t1 > t0 ? ((p[0] - t0) / (t1 - t0)) * 98 + 1 : 1;
    const y = flat ? 15 : 28 - ((p[1] - lo) / (hi - lo)) * 26;
    return x.toFixed(2) + "," + y.toFixed(2);
  });
  svg.append(svgEl("polyline", { points: xy.join(" "), "vector-effect": "non-scaling-stroke" }));
  const title = svgEl("title", {});
  title.textContent = "min " + fmt(lo) + ", max " + fmt(hi) + " over " + vals.length + " samples";
  svg.append(title);
  return el("div", { class: "trend" }, svg,
    el("div", { class: "range", title: "range of the line" },
      el("span", { class: "max" }, fmt(hi)), el("span", { class: "min" }, fmt(lo))));
}

function kpi(label, value, series, opts) {
  return el("div", { class: "kpi" }, el("span", { class: "label" }, label),
    el("div", { class: "row" }, el("span", { class: "value" }, value), trend(series, opts)));
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

const KIND_WORDS = {
  data_drift: "Input drift", prediction_drift: "Prediction drift", concept_drift: "Concept drift",
  performance: "Performance", fairness: "Fairness gap", schema: "Schema change", data_quality: "Data quality",
  latency: "Latency", business: "Business outcome", retrain_recommended: "Retrain recommended",
  rollback_recommended: "Rollback recommended",
};
function segmentText(seg) {
  const s = Object.entries(seg || {}).map(([k, v]) => k + "=" + v).join(",");
  return s ? "in " + s : "in all traffic";
}
// A drift bar's fill: the effect's share of its threshold. Only an effect at the threshold fills it: a share
// just below it (0.996) would round to a full bar under a "stable" label.
function barWidth(ratio) {
  const r = Math.max(0, ratio || 0);
  return (r >= 1 ? 100 : Math.min(99, Math.round(100 * r))) + "%";
}
function count(n) { return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"); }

// An alert is shown red only while its incident is open: a firing event whose incident has resolved is not.
function eventState(a, openIds) {
  if (a.status === "resolved") return "resolved";
  return openIds.has(a.alert_id) ? "firing" : "fired";
}
function eventBadge(a, openIds) {
  const st = eventState(a, openIds);
  const text = st === "fired" ? "fired · resolved since" : st;
  return el("span", { class: "badge " + st, "data-state": st }, text);
}

// Open alerts grouped by incident (alerts of one change share an incident_id): one entry per change, with
// its facet and kinds, and each alert inside it.
function incidents(open) {
  if (!open.length) return null;
  const groups = new Map();
  for (const a of open) {
    const id = (a.fired || {}).incident_id || a.incident_id || a.key;
    if (!groups.has(id)) groups.set(id, []);
    groups.get(id).push(a);
  }
  return el("ul", { class: "incidents" }, [...groups.entries()].map(([id, alerts]) => {
    const kinds = [...new Set(alerts.map((a) => KIND_WORDS[a.kind] || a.kind))].join(", ");
    const first = alerts[0];
    const seg = first.segment || {};
    const facet = Object.keys(seg).length ? Object.entries(seg).map(([k, v]) => k + "=" + v).join(", ") : first.subject;
    return el("li", { class: "incident", "data-incident": id, "data-alerts": String(alerts.length) },
      el("div", { class: "incident-head" }, el("strong", {}, "Incident" + (facet ? " on " + facet : "")),
        el("span", { class: "muted" }, " · " + alerts.length + (alerts.length === 1 ? " alert" : " alerts") + ": " + kinds)),
      el("ul", { class: "open-alerts" }, alerts.map(openAlert)));
  }));
}

function openAlert(a) {
  const imp = a.impact || {};
  const now = a.now || {};
  const fired = a.fired || {};
  const win = fired.window || {};
  const impact = [];
  if (imp.segment && imp.segment !== "all" && imp.share !== null && imp.share !== undefined) {
    impact.push(imp.segment + " is " + pct(imp.share) + " of traffic");
  } else if (imp.segment === "all") {
    impact.push("all traffic");
  }
  if (imp.predictions_since_change !== null && imp.predictions_since_change !== undefined) {
    impact.push("about " + count(imp.predictions_since_change) + " predictions there since the change began" +
      (now.started_at ? " (" + now.started_at.slice(11, 19) + " UTC)" : ""));
  }
  if (imp.accuracy !== null && imp.accuracy !== undefined) {
    impact.push("accuracy there " + pct(imp.accuracy) + (imp.labelled ? " (" + count(imp.labelled) + " labels)" : "") +
      (imp.accuracy_all !== null && imp.accuracy_all !== undefined && imp.segment !== "all" ? ", all traffic " + pct(imp.accuracy_all) : ""));
  } else {
    impact.push("no labels there yet");
  }
  return el("li", { class: "open-alert", "data-key": a.key, "data-kind": a.kind, "data-recommendation": a.recommendation || "" },
    el("div", { class: "what" }, el("strong", {}, (KIND_WORDS[a.kind] || a.kind) + " on " + a.subject + " " + segmentText(a.segment)),
      a.severity ? el("span", { class: "muted" }, " · " + a.severity) : null,
      el("span", { class: "action " + (a.recommendation || "none") }, " · " + (ACTIONS[a.recommendation] || ACTIONS.none))),
    el("p", { class: "now" }, el("span", { class: "tag" }, "Now"), " ", now.sentence || "Still open: its condition has not cleared yet."),
    fired.message ? el("p", { class: "fired muted" }, el("span", { class: "tag" }, "When it fired"),
      " " + when(fired.emitted_at) + ": " + fired.message + (win.events ? " (" + count(win.events) + " predictions in its window)" : "")) : null,
    el("p", { class: "impact" }, el("span", { class: "tag" }, "Impact"), " " + impact.join("; ") + "."));
}

function segmentsTable(m) {
  const rows = (m.segments || []).filter((s) => s.predictions > 0);
  if (!rows.length) return null;
  const hasLabels = rows.some((s) => s.accuracy !== null && s.accuracy !== undefined);
  return el("div", { class: "segments" }, el("strong", {}, "Traffic and accuracy per segment"),
    el("table", { class: "compact" }, el("thead", {}, el("tr", {},
      ["Segment", "Share", "Predictions", hasLabels ? "Accuracy (labelled)" : "Accuracy", "Labels"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((s) => el("tr", { "data-segment": s.segment },
      el("td", {}, s.segment), el("td", {}, pct(s.share)), el("td", {}, count(s.predictions)),
      el("td", {}, s.accuracy === null || s.accuracy === undefined ? "no labels yet" : pct(s.accuracy)),
      el("td", {}, count(s.labelled)))))));
}

function renderModel(m, series, span, openIds, interval) {
  const s = series || {};
  const last = (name) => { const pts = s[name] || []; return pts.length ? pts[pts.length - 1][1] : null; };
  const drifting = (m.open_alerts || []).some((a) => a.kind === "data_drift" || a.kind === "prediction_drift");
  const kpis = [
    kpi("Accuracy (labelled, recent)", m.accuracy === null ? "no labels yet" : pct(m.accuracy), s.accuracy, { fmt: pct }),
    kpi("Estimated accuracy (no labels)", estimate(m), s.estimated_accuracy, { fmt: pct }),
    kpi("Predictions per second", num(last("events_per_s")), s.events_per_s, { zero: true }),
    kpi("Largest drift effect", num(last("max_drift_effect")), s.max_drift_effect, { zero: true, bad: drifting }),
    kpi("Label coverage", pct(m.label_coverage), s.label_coverage, { fmt: pct }),
  ];
  for (const [name, value] of Object.entries(m.outcomes || {})) {
    kpis.push(kpi("Business: " + name + " (mean)", num(value), s["outcome:" + name]));
  }
  const points = Math.max(0, ...Object.values(s).map((p) => p.length));
  const trendNote = points < 2 ? "trends appear after two history samples (one every " + interval + " s)" : "trends: last " + span + ", each with its range";
  const changes = (m.changes || []).slice(0, 6).map((a) =>
    el("li", {}, eventBadge(a, openIds), " ", when(a.emitted_at), ": ", a.message || a.key));
  const open = m.open_alerts || [];
  return el("article", { class: "card " + m.health, "data-model": m.model + "/" + m.version },
    el("div", { class: "card-head" },
      el("h3", {}, m.model, " ", el("span", { class: "muted" }, m.version)),
      el("span", { class: "badge " + m.health, "data-health": m.health }, healthWord(m.health))),
    el("p", { class: "reason" }, m.reason),
    el("div", { class: "muted meta" }, count(m.events) + " predictions monitored · " + trendNote),
    el("div", { class: "card-body" },
      el("div", { class: "col" }, el("div", { class: "kpis" }, kpis), segmentsTable(m)),
      el("div", { class: "col" },
        el("strong", {}, open.length ? "Open incidents" : "No open alerts"),
        incidents(open),
        el("strong", {}, "What changed and when"),
        changes.length ? el("ul", { class: "changes" }, changes) : el("p", { class: "muted" }, "Nothing has changed yet."))));
}

function renderAlerts(alerts, openIds) {
  const tbody = document.querySelector("#alerts tbody");
  tbody.replaceChildren();
  if (!alerts.length) {
    tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No alerts yet.")));
    return;
  }
  for (const a of alerts) {
    const st = eventState(a, openIds);
    const rec = st === "firing" ? (a.recommendation || "none") : "none";
    tbody.append(el("tr", { class: st, "data-key": a.key, "data-state": st },
      el("td", {}, when(a.emitted_at)),
      el("td", {}, eventBadge(a, openIds)),
      el("td", { class: "narrow-hide" }, a.severity),
      el("td", { class: "narrow-hide" }, a.model + " " + a.model_version),
      el("td", {}, a.message || a.key),
      el("td", {}, el("span", { class: "action " + rec }, st === "fired" ? "None: resolved since" : (ACTIONS[rec] || rec)))));
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
  box.append(el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, el("tr", {},
    ["Model", "Attribute", "Group", "Metric", "Gap", "95% interval", "Status"].map((h) => el("th", {}, h)))),
    el("tbody", {}, body))));
}

const STATUS_WORDS = { drifting: "drifting (alert open)", above: "above threshold, no alert", stable: "stable" };
function renderDrift(models) {
  const box = document.getElementById("drift");
  box.replaceChildren();
  for (const m of models) {
    if (!m.drift || !m.drift.length) continue;
    const shown = m.drift.slice(0, DRIFT_ROWS);
    const rows = shown.map((d) => {
      const w = d.window;
      return el("tr", { class: d.status, "data-status": d.status },
        el("td", {}, d.feature), el("td", {}, d.segment), el("td", { class: "narrow-hide" }, d.kind),
        el("td", {}, el("span", { class: "bar " + d.status },
          el("span", { style: "width:" + barWidth(d.ratio) })), " ", num(d.effect) + " / " + num(d.threshold),
          w ? el("span", { class: "muted window" }, "window " + w.statistic.toUpperCase() + " " + num(w.value) + " / " + num(w.threshold)) : null),
        el("td", { class: "narrow-hide" }, pct(d.missing_ratio)), el("td", {}, count(d.events)),
        el("td", {}, d.status === "drifting" ? el("span", { class: "badge firing" }, STATUS_WORDS.drifting) :
          d.status === "above" ? el("span", { class: "badge watch", title: "not significant yet, or explained by another stream's alert" }, STATUS_WORDS.above) : "stable"));
    });
    const more = m.drift_streams > shown.length ? " (largest " + shown.length + " of " + m.drift_streams + " streams; all in /api/overview)" : "";
    box.append(el("h3", {}, m.model + " " + m.version + more),
      el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, el("tr", {},
        ["Feature", "Segment", "Type", "Effect / threshold", "Missing", "Events", "Status"].map((h, i) =>
          el("th", { class: i === 2 || i === 4 ? "narrow-hide" : null }, h)))),
        el("tbody", {}, rows))));
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
    const openIds = new Set(ov.open_alert_ids || []);
    for (const m of ov.models) models.append(renderModel(m, hist.series[m.model + "/" + m.version], span, openIds, hist.interval_s));
    renderAlerts(ov.alerts || [], openIds);
    renderFairness(ov.fairness);
    renderDrift(ov.models);
    status.textContent = (ov.ready ? "ready" : "NOT READY") + " · partitions " + (ov.partitions.join(", ") || "none") +
      " · history: one point every " + hist.interval_s + " s, " + hist.points + " points kept · updated " +
      new Date(ov.generated_at * 1000).toISOString().slice(11, 19) + " UTC";
    document.body.dataset.generated = String(ov.generated_at);
    document.body.dataset.loaded = "true";
  } catch (err) {
    status.textContent = "cannot reach the monitor: " + err.message;
  }
}

// ?refresh=0 keeps the page as loaded (screenshots, printing); ?refresh=N refreshes every N seconds.
const asked = new URLSearchParams(location.search).get("refresh");
const every = asked === null || isNaN(Number(asked)) ? REFRESH_MS : 1000 * Number(asked);
refresh();
if (every > 0) setInterval(refresh, Math.max(every, 1000));
