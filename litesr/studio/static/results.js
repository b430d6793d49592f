// The Results page: MOS per condition with 95% confidence intervals, A/B win rates, and the CSV of both.
"use strict";

async function init() {
  const select = document.getElementById("group");
  for (const g of (await api("/api/info")).groups) select.appendChild(el("option", {value: g, text: g}));
  select.addEventListener("change", load);
  await load();
}

function table(id, columns, rows) {
  const head = el("tr", {}, ...columns.map(([title]) => el("th", {text: title})));
  const t = el("table", {id}, head);
  for (const row of rows) t.appendChild(el("tr", {"data-condition": row.condition}, ...columns.map(([, f]) => el("td", {text: f(row)}))));
  return t;
}

async function load() {
  const group = document.getElementById("group").value;
  const query = group ? `?group=${encodeURIComponent(group)}` : "";
  document.getElementById("csv").href = `/api/rate/results.csv${query}`;
  const results = await api(`/api/rate/results${query}`);
  const mos = document.getElementById("mos");
  const prefs = document.getElementById("prefs");
  mos.innerHTML = prefs.innerHTML = "";
  mos.appendChild(results.mos.length ? table("mos-table", [
    ["condition", (r) => r.condition], ["ratings", (r) => String(r.n)], ["MOS", (r) => fmt(r.mos, 3)],
    ["95% CI", (r) => (r.ci95_low === null ? "–" : `${fmt(r.ci95_low, 3)} – ${fmt(r.ci95_high, 3)}`)],
    ["SD", (r) => fmt(r.sd, 3)]], results.mos) : el("p", {class: "muted", text: "no ratings yet"}));
  prefs.appendChild(results.preferences.length ? table("pref-table", [
    ["condition", (r) => r.condition], ["comparisons", (r) => String(r.comparisons)], ["wins", (r) => String(r.wins)],
    ["win rate", (r) => fmt(r.win_rate, 3)],
    ["95% CI", (r) => `${fmt(r.ci95_low, 3)} – ${fmt(r.ci95_high, 3)}`]], results.preferences)
    : el("p", {class: "muted", text: "no A/B answers yet"}));
}

document.addEventListener("DOMContentLoaded", () => init().catch((e) => showError(e.message)));
