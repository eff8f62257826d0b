// payhook console. It reads the admin API (or the payhook_console handler's
// copy of it) at paths relative to the page: events, stats, inbox/…
// Every text from the API goes into the page as text, never as HTML.
// The page inlines this script at its end: the elements above exist when
// it runs, and the first rows come with the page (#payhook-first).
"use strict";

const csrf = document.querySelector('meta[name="payhook-csrf"]').content;
const pageSize = 50;

const outcomeLabels = {
  forwarded: "delivered", queued: "queued", duplicate: "duplicate", rejected: "refused", upstream_failed: "shop failed",
  ignored: "no payment", challenge_answered: "URL check",
};
const outcomeOrder = ["forwarded", "queued", "duplicate", "ignored", "challenge_answered", "upstream_failed", "rejected"];
const outcomeColors = {
  forwarded: "#2e8b57", queued: "#3a6fd8", duplicate: "#9aa3b2", rejected: "#d23b3b", upstream_failed: "#e08a1e",
  ignored: "#c3c8d1", challenge_answered: "#c3c8d1",
};

// el builds an element: el("td", {class: "x"}, "text", child…).
function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function notice(text, isError) {
  const n = document.getElementById("notice");
  n.textContent = text || "";
  n.className = isError ? "error" : "";
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({credentials: "same-origin", headers: {Accept: "application/json"}}, options));
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    throw new Error((body && body.error) || (resp.status + " " + resp.statusText));
  }
  return body;
}

function post(path) {
  return api(path, {method: "POST", headers: {Accept: "application/json", "X-Payhook-Csrf": csrf}});
}

const pad = (n, w) => String(n).padStart(w || 2, "0");

function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function formatAge(iso) {
  if (!iso) return "";
  let s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function formatAmount(amount) {
  if (!amount) return "";
  return (amount.decimal || amount.value + " minor units") + " " + amount.currency;
}

// shortRoute names a route by its matchers' values (localhost
// /callbacks/ixopay*) rather than its whole place in the configuration.
function shortRoute(place) {
  if (!place) return "";
  const values = [...place.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1].replace(/"/g, ""));
  return values.length ? values.join(" ") : place;
}

function routeCell(place) {
  return el("span", {title: place}, shortRoute(place));
}

function outcomeCell(entry) {
  return [
    el("span", {class: "outcome o-" + entry.outcome}, outcomeLabels[entry.outcome] || entry.outcome),
    entry.inbox_state ? " → " : null,
    entry.inbox_state ? el("span", {class: "outcome s-" + entry.inbox_state}, entry.inbox_state) : null,
    entry.reason ? " " : null,
    entry.reason ? el("span", {class: "reason"}, entry.reason) : null,
  ];
}

// ---- the callbacks' list ----

// query is the filters applied (the form may hold others not yet
// searched): paging and the auto-refresh keep them.
const state = {pages: [], before: 0, next: 0, query: null};

// The page's own timings (ms since the navigation began; the last
// search's), which the browser test reports.
window.payhookTimings = {firstRows: 0, lastSearch: 0};

function filterQuery() {
  const q = new URLSearchParams();
  for (const name of ["ref", "provider", "route", "outcome"]) {
    const v = document.getElementById(name).value.trim();
    if (v) q.set(name, v);
  }
  for (const name of ["since", "until"]) {
    const v = document.getElementById(name).value;
    if (v) q.set(name, new Date(v).toISOString().replace(/\.\d+Z$/, "Z"));
  }
  return q;
}

// loadEvents shows the page of callbacks older than before (0: the
// newest) that the applied filters select; search applies the form's.
async function loadEvents(before) {
  const q = new URLSearchParams(state.query || filterQuery());
  q.set("limit", pageSize);
  if (before) q.set("before", before);
  const started = performance.now();
  let list;
  try {
    list = await api("events?" + q);
  } catch (err) {
    notice("Searching the journal: " + err.message, true);
    return;
  }
  drawEvents(list, q, before, started);
}

// drawEvents shows a page of callbacks: list is the answer of events?q.
function drawEvents(list, q, before, started) {
  const tbody = document.querySelector("#events tbody");
  const open = document.querySelector("#events tbody tr.open");
  state.before = before || 0;
  state.next = list.next || 0;
  tbody.replaceChildren(...list.events.map(eventRow));
  // A refresh keeps the open callback's row marked.
  if (open) tbody.querySelector(`tr[data-seq="${open.dataset.seq}"]`)?.classList.add("open");
  if (list.events.length === 0) {
    tbody.append(el("tr", {}, el("td", {colspan: 8, class: "empty"}, q.get("ref") ? "No callback in the journal names " + q.get("ref") + "." : "No callback matches.")));
  }
  window.payhookTimings.lastSearch = performance.now() - started;
  if (!window.payhookTimings.firstRows) window.payhookTimings.firstRows = performance.now();
  document.getElementById("older").disabled = !state.next;
  document.getElementById("newer").disabled = !state.before;
}

function eventRow(entry) {
  const open = (e) => {
    document.querySelectorAll("#events tbody tr.open").forEach((r) => r.classList.remove("open"));
    e.currentTarget.classList.add("open");
    openDetail(entry);
  };
  return el("tr", {tabindex: 0, "data-seq": entry.seq, onclick: open, onkeydown: (e) => { if (e.key === "Enter") open(e); }},
    el("td", {"data-label": "Time"}, formatTime(entry.at)),
    el("td", {"data-label": "Route"}, routeCell(entry.route)),
    el("td", {"data-label": "Provider"}, entry.provider),
    el("td", {"data-label": "Outcome"}, outcomeCell(entry)),
    el("td", {"data-label": "Status"}, entry.status || ""),
    el("td", {"data-label": "Amount", class: "num"}, formatAmount(entry.amount)),
    el("td", {"data-label": "Merchant ref", class: "ref"}, entry.merchant_reference || ""),
    el("td", {"data-label": "Provider ref", class: "ref"}, entry.provider_reference || ""),
  );
}

// ---- one callback's timeline ----

async function openDetail(entry) {
  const panel = document.getElementById("detail");
  const envelope = document.getElementById("envelope");
  envelope.hidden = true;
  envelope.textContent = "";
  document.getElementById("detail-title").textContent = entry.event_id ? "Event " + entry.event_id : "Callback refused before any event was read";
  const facts = [
    ["Provider", entry.provider], ["Route", shortRoute(entry.route)], ["Event type", entry.event_type], ["Status", entry.status],
    ["Amount", formatAmount(entry.amount)], ["Merchant ref", entry.merchant_reference], ["Provider ref", entry.provider_reference],
    ["Client", entry.client_ip],
  ];
  document.getElementById("detail-facts").replaceChildren(...facts.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const timeline = document.getElementById("timeline");
  const actions = document.getElementById("detail-actions");
  timeline.replaceChildren();
  actions.replaceChildren();
  panel.hidden = false;
  document.getElementById("detail-close").focus();

  // Every journal entry of the event (a duplicate is an entry too), with
  // the delivery attempts; then its state in the inbox.
  let entries = [entry];
  if (entry.event_id) {
    try {
      const list = await api("events?" + new URLSearchParams({ref: entry.event_id, limit: 100}));
      entries = list.events.filter((e) => e.event_id === entry.event_id && e.route === entry.route);
      if (!entries.some((e) => e.seq === entry.seq)) entries.push(entry);
    } catch (err) {
      notice("Reading the event's journal: " + err.message, true);
    }
  }
  entries.sort((a, b) => a.seq - b.seq);
  const items = [];
  let attempts = [];
  for (const e of entries) {
    items.push({at: e.at, cls: "", text: `Received from ${e.client_ip || "?"} by ${shortRoute(e.route)} (${e.provider})`});
    if (e.outcome === "rejected") {
      items.push({at: e.at, cls: "bad", text: "Refused: " + (e.reason || "no reason recorded")});
      continue;
    }
    items.push({at: e.at, cls: "ok", text: "Verified" + (e.verified_by ? " by " + e.verified_by : "")});
    if (e.outcome === "duplicate") items.push({at: e.at, cls: "", text: "A duplicate: acknowledged, not delivered again"});
    if (e.outcome === "queued") items.push({at: e.at, cls: "", text: "Stored in the inbox; the provider was acknowledged"});
    if (e.attempts && e.attempts.length > attempts.length) attempts = e.attempts;
  }
  for (const a of attempts) {
    const ok = a.status >= 200 && a.status < 300 && !a.error;
    const answer = a.status ? "the shop answered " + a.status : "no answer from the shop";
    items.push({at: a.at, cls: ok ? "ok" : "bad", text: `Delivery attempt: ${answer} in ${a.latency_ms.toFixed(1)} ms` + (a.error ? " — " + a.error : "")});
  }
  let inboxEvent = null;
  if (entry.event_id && entries.some((e) => e.outcome === "queued")) {
    try {
      inboxEvent = await api("inbox/" + encodeURIComponent(entry.event_id) + "?envelope=no");
    } catch (err) {
      items.push({at: null, cls: "warn", text: "Not in the inbox any more: " + err.message});
    }
  }
  if (inboxEvent) {
    const s = inboxEvent.summary;
    if (s.state === "delivered") items.push({at: s.done_at, cls: "ok", text: `Delivered (${s.attempts} attempt${s.attempts === 1 ? "" : "s"})`});
    if (s.state === "failed") items.push({at: s.done_at, cls: "bad", text: `Failed after ${s.attempts} attempts: ${s.last_error || "no reason recorded"}`});
    if (s.state === "pending") items.push({at: s.next_attempt, cls: "warn", text: "Pending: next attempt" + (s.last_error ? " (last: " + s.last_error + ")" : "")});
    if (s.orphaned) items.push({at: null, cls: "warn", text: "Orphaned: no running route delivers its inbox"});
    actions.append(
      el("button", {type: "button", id: "replay", onclick: () => confirmThen(
        `Deliver event ${s.id} to the shop again, now? The shop receives it once more, with the same event id.`, "Replay",
        async () => { const r = await post("inbox/" + encodeURIComponent(s.id) + "/replay?inbox=" + encodeURIComponent(s.inbox));
          notice(`Event ${r.id} is ${r.state} again: it is being delivered.`); refreshInbox(); })}, "Replay…"),
      el("button", {type: "button", id: "show-envelope", class: "quiet", onclick: () => showEnvelope(s)}, "Show envelope (personal data)"),
    );
  } else if (entry.event_id && entry.outcome !== "rejected") {
    actions.append(el("span", {class: "empty"}, "Delivered at once, not through the inbox: payhook keeps no copy of the envelope to show or replay."));
  }
  timeline.replaceChildren(...items.map((i) => el("li", {class: i.cls}, i.at ? el("time", {datetime: i.at}, formatTime(i.at)) : null, i.text)));
}

async function showEnvelope(summary) {
  const pre = document.getElementById("envelope");
  try {
    const view = await api("inbox/" + encodeURIComponent(summary.id) + "?inbox=" + encodeURIComponent(summary.inbox));
    pre.textContent = JSON.stringify(view.envelope, null, 2);
    pre.hidden = false;
  } catch (err) {
    notice("Reading the envelope: " + err.message, true);
  }
}

function closeDetail() {
  document.querySelectorAll("#events tbody tr.open").forEach((r) => r.classList.remove("open"));
  document.getElementById("detail").hidden = true;
  document.getElementById("envelope").textContent = "";
}

// ---- confirmation ----

// confirmThen asks before action; choice, when given, is an element the
// operator sets in the confirmation (a select), which action reads.
function confirmThen(text, yes, action, choice) {
  const modal = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-choice").replaceChildren(...(choice ? [choice] : []));
  const yesButton = document.getElementById("confirm-yes");
  yesButton.textContent = yes;
  modal.hidden = false;
  yesButton.focus();
  const close = () => { modal.hidden = true; yesButton.onclick = null; };
  document.getElementById("confirm-no").onclick = close;
  yesButton.onclick = async () => {
    close();
    try {
      await action();
    } catch (err) {
      notice(yes + " refused: " + err.message, true);
    }
  };
}

// ---- the inbox ----

// failedPage is the failed events listed at once; "More" lists the next
// ones (the admin API's before= and next_before). failed holds those
// listed: a refresh lists as many again.
const failedPage = 20;
const failed = {events: [], next: 0};

async function refreshInbox() {
  const box = document.getElementById("inbox");
  let routes, list;
  try {
    [routes, list] = await Promise.all([api("inbox/routes"),
      api("inbox?state=failed&limit=" + Math.max(failedPage, failed.events.length))]);
  } catch (err) {
    box.replaceChildren(el("p", {class: "empty"}, "The inbox: " + err.message));
    return [];
  }
  failed.events = list.events;
  failed.next = list.next_before || 0;
  const running = routes.inboxes.filter((ib) => !ib.orphaned);
  const rows = routes.inboxes.map((ib) => {
    return el("tr", {"data-inbox": ib.inbox},
      el("td", {}, ib.route ? routeCell(ib.route) : ib.inbox, ib.orphaned ? el("span", {class: "tag warn"}, "orphaned") : null, ib.enabled ? null : el("span", {class: "tag"}, "inbox off")),
      el("td", {}, ib.provider),
      el("td", {class: "num"}, ib.pending),
      el("td", {class: "num"}, ib.pending ? formatAge(ib.oldest) : ""),
      el("td", {class: "num"}, ib.failed ? el("span", {class: "alert"}, ib.failed) : "0"),
      el("td", {}, ib.failed && !ib.orphaned ? el("button", {type: "button", class: "retry-failed", onclick: () => confirmThen(
        `Deliver every failed event of ${shortRoute(ib.route) || ib.inbox} to the shop again?`, "Retry all failed",
        async () => { const r = await post("inbox/retry-failed?inbox=" + encodeURIComponent(ib.inbox));
          notice(`${r.replayed.length} failed event(s) are being delivered again.`); refreshInbox(); })}, "Retry all failed…") : null,
        ib.orphaned && ib.pending ? moveButton(ib, running) : null),
    );
  });
  const parts = [];
  if (rows.length) {
    parts.push(el("div", {class: "table-wrap"}, el("table", {},
      el("thead", {}, el("tr", {}, ["Route", "Provider", "Pending", "Oldest pending", "Failed", ""].map((h, i) => el("th", {class: i >= 2 && i <= 4 ? "num" : null}, h)))),
      el("tbody", {}, rows))));
  } else {
    parts.push(el("p", {class: "empty"}, "No route has an inbox."));
  }
  if (failed.events.length) {
    parts.push(el("h3", {}, "Failed events"), el("ul", {class: "failed-list"}, failed.events.map(failedItem)),
      el("p", {}, el("button", {type: "button", id: "more-failed", class: "quiet", hidden: !failed.next, onclick: moreFailed}, "More failed events")));
  }
  box.replaceChildren(...parts);
  return routes.inboxes;
}

function failedItem(ev) {
  return el("li", {}, el("a", {href: "#", class: "ref", onclick: (e) => { e.preventDefault(); openByID(ev.id); }}, ev.id),
    ` ${ev.provider} · ${ev.attempts} attempts · ${ev.last_error || ""} · ${formatTime(ev.received_at)}`);
}

// moreFailed lists the next page of failed events, older than those listed.
async function moreFailed() {
  let list;
  try {
    list = await api("inbox?state=failed&limit=" + failedPage + "&before=" + failed.next);
  } catch (err) {
    notice("Listing the failed events: " + err.message, true);
    return;
  }
  failed.events.push(...list.events);
  failed.next = list.next_before || 0;
  document.querySelector("#inbox .failed-list").append(...list.events.map(failedItem));
  document.getElementById("more-failed").hidden = !failed.next;
}

// moveButton hands an orphaned inbox's waiting events (its route is gone
// from the configuration) to a running route the operator chooses, the
// same provider's first.
function moveButton(gone, running) {
  const targets = running.slice().sort((a, b) => (b.provider === gone.provider) - (a.provider === gone.provider));
  return el("button", {type: "button", class: "move", disabled: !targets.length, onclick: () => {
    const select = el("select", {id: "move-to", "aria-label": "The route to deliver them"},
      targets.map((ib) => el("option", {value: ib.inbox}, `${shortRoute(ib.route)} (${ib.provider})`)));
    confirmThen(`Deliver the ${gone.pending} waiting event(s) of the gone route ${gone.inbox} (${gone.provider}) through this route? ` +
      "It delivers them with its own handlers, to its own shop.", "Move", async () => {
      const r = await post("inbox/move?" + new URLSearchParams({from: gone.inbox, to: select.value}));
      notice(`${r.moved} event(s) moved to ${shortRoute(r.route)}: they are being delivered.`);
      refreshInbox();
    }, select);
  }}, "Move to route…");
}

async function openByID(id) {
  try {
    const list = await api("events?" + new URLSearchParams({ref: id, limit: 10}));
    const entry = list.events.find((e) => e.event_id === id);
    if (entry) openDetail(entry);
    else notice("The journal has no entry of event " + id + " any more.", true);
  } catch (err) {
    notice(err.message, true);
  }
}

// ---- the chart ----

async function refreshChart() {
  const box = document.getElementById("charts");
  const hour = 3600 * 1000;
  const end = Math.floor(Date.now() / hour) * hour; // the current hour's start
  const start = end - 23 * hour;
  let stats;
  try {
    stats = await api("stats?since=" + new Date(start).toISOString().replace(/\.\d+Z$/, "Z"));
  } catch (err) {
    box.replaceChildren(el("p", {class: "empty"}, "The chart: " + err.message));
    return [];
  }
  const byProvider = {};
  for (const c of stats.hours) {
    const i = Math.round((new Date(c.hour).getTime() - start) / hour);
    if (i < 0 || i > 23) continue;
    const p = (byProvider[c.provider] = byProvider[c.provider] || {counts: {}, total: 0, refused: 0});
    (p.counts[c.outcome] = p.counts[c.outcome] || new Array(24).fill(0))[i] += c.count;
    p.total += c.count;
    if (c.outcome === "rejected") p.refused += c.count;
  }
  const providers = Object.keys(byProvider).sort();
  if (!providers.length) {
    box.replaceChildren(el("p", {class: "empty"}, "No callback in the last 24 hours."));
    return [];
  }
  box.replaceChildren(...providers.map((name) => chart(name, byProvider[name], start)));
  return providers;
}

function chart(provider, data, start) {
  const W = 480, H = 150, left = 28, bottom = 18, top = 6;
  const barW = (W - left) / 24;
  const totals = new Array(24).fill(0);
  for (const series of Object.values(data.counts)) series.forEach((n, i) => { totals[i] += n; });
  const max = Math.max(1, ...totals);
  const y = (n) => (H - bottom - top) * n / max;
  const svg = el("svg:svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${provider}: callbacks per hour by outcome`});
  for (const f of [0, 0.5, 1]) {
    const gy = H - bottom - y(max * f);
    svg.append(el("svg:line", {class: "grid", x1: left, x2: W, y1: gy, y2: gy}),
      el("svg:text", {class: "axis", x: left - 3, y: gy + 3, "text-anchor": "end"}, Math.round(max * f)));
  }
  for (let i = 0; i < 24; i++) {
    let base = H - bottom;
    for (const outcome of outcomeOrder.concat(Object.keys(data.counts).filter((o) => !outcomeOrder.includes(o)))) {
      const n = (data.counts[outcome] || [])[i] || 0;
      if (!n) continue;
      const h = y(n);
      base -= h;
      svg.append(el("svg:rect", {x: left + i * barW + 1, y: base, width: barW - 2, height: h, fill: outcomeColors[outcome] || "#666", "data-outcome": outcome},
        el("svg:title", {}, `${pad(new Date(start + i * 3600e3).getHours())}:00 — ${n} ${outcomeLabels[outcome] || outcome}`)));
    }
    if (i % 3 === 0) {
      svg.append(el("svg:text", {class: "axis", x: left + i * barW + barW / 2, y: H - 5, "text-anchor": "middle"}, pad(new Date(start + i * 3600e3).getHours()) + "h"));
    }
  }
  const legend = el("div", {class: "legend"}, Object.keys(data.counts).map((o) =>
    el("span", {}, el("i", {style: null, "data-color": o}), outcomeLabels[o] || o)));
  // The legend's colours: set through the CSSOM (the page's policy allows no inline style attribute).
  legend.querySelectorAll("i").forEach((i) => { i.style.background = outcomeColors[i.dataset.color] || "#666"; });
  return el("div", {class: "chart", "data-provider": provider},
    el("h3", {}, provider, " · ", data.total, " callbacks",
      data.refused ? el("span", {class: "alert"}, ` · ${data.refused} refused`) : null),
    svg, legend);
}

// ---- filters' choices ----

function fillSelect(id, values, label) {
  const select = document.getElementById(id);
  const current = select.value;
  const known = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (v && !known.has(v)) select.append(el("option", {value: v, title: v}, label ? label(v) : v));
  select.value = current;
}

async function refreshAll() {
  const [inboxes, providers] = await Promise.all([refreshInbox(), refreshChart()]);
  fillSelect("provider", new Set([...providers, ...inboxes.map((i) => i.provider)]));
  fillSelect("route", new Set(inboxes.map((i) => i.route).filter(Boolean)), shortRoute);
}

// ---- auto-refresh ----

// Every refreshEvery while the tab is visible and the toggle on, the list
// (its page, with the filters applied), the inbox and the chart are read
// again; an open timeline, the form and the scroll stay as they are.
const refreshEvery = 10000;
let refreshTimer = 0;

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = 0;
  if (document.getElementById("auto-refresh").checked && document.visibilityState === "visible") {
    refreshTimer = setTimeout(refresh, refreshEvery);
  }
}

async function refresh() {
  await Promise.all([loadEvents(state.before), refreshAll()]);
  scheduleRefresh();
}

// The page's first rows came with it: drawn at once, before any request.
function firstRows() {
  const island = document.getElementById("payhook-first").textContent;
  if (!island) return false;
  const q = filterQuery();
  q.set("limit", pageSize);
  drawEvents(JSON.parse(island), q, 0, performance.now());
  return true;
}

{
  const ref = new URLSearchParams(location.search).get("ref");
  if (ref) document.getElementById("ref").value = ref;
  if (!firstRows()) loadEvents(0);
  state.query = filterQuery();
  const search = () => { state.pages = []; state.query = filterQuery(); loadEvents(0); };
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  document.getElementById("filters").addEventListener("reset", () => { setTimeout(search); });
  document.getElementById("older").addEventListener("click", () => { state.pages.push(state.before); loadEvents(state.next); });
  document.getElementById("newer").addEventListener("click", () => { loadEvents(state.pages.pop() || 0); });
  document.getElementById("detail-close").addEventListener("click", closeDetail);
  document.getElementById("detail").addEventListener("click", (e) => { if (e.target.id === "detail") closeDetail(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") { closeDetail(); document.getElementById("confirm").hidden = true; } });
  const toggle = document.getElementById("auto-refresh");
  toggle.checked = localStorage.getItem("payhook-auto-refresh") !== "off";
  toggle.addEventListener("change", () => {
    localStorage.setItem("payhook-auto-refresh", toggle.checked ? "on" : "off");
    if (toggle.checked) refresh(); else scheduleRefresh();
  });
  // Hidden, the page asks nothing; visible again, it catches up at once.
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && toggle.checked) refresh(); else scheduleRefresh(); });
  refreshAll().then(scheduleRefresh);
}
