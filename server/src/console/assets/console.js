// Onsite console: the only script the pages load (no inline script; CSP script-src 'self').
// - The board subscribes to /console/events (SSE) and swaps in the rows of the same filters
//   when the provider's orders change, without a reload.
// - SLA countdowns tick every 10 s: amber under an hour, red once breached.
// - A file input with data-fills="<id>" loads a JSON file into that textarea.
"use strict";

const AMBER_MS = 3600 * 1000;

function countdown(leftMs) {
  const m = Math.floor(Math.abs(leftMs) / 60000);
  return (leftMs < 0 ? "-" : "") + Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
}

function tick() {
  const now = Date.now();
  const breached = document.documentElement.lang === "en" ? "Breached" : "已超时";
  for (const el of document.querySelectorAll(".sla[data-deadline]")) {
    const left = Number(el.dataset.deadline) - now;
    el.classList.toggle("red", left <= 0);
    el.classList.toggle("amber", left > 0 && left < AMBER_MS);
    el.textContent = countdown(left);
    if (left <= 0) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = breached;
      el.append(" ", tag);
    }
  }
}

function liveBoard(table) {
  const body = () => document.getElementById("board-rows");
  let pending = false;
  async function refresh() {
    if (pending) return;
    pending = true;
    try {
      const resp = await fetch("/console/board/rows" + location.search, { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) return;
      const tpl = document.createElement("template");
      tpl.innerHTML = "<table>" + (await resp.text()) + "</table>";
      const fresh = tpl.content.querySelector("tbody");
      const old = body();
      if (!fresh || !old) return;
      const before = new Map([...old.rows].map((r) => [r.dataset.order, r.textContent]));
      old.replaceWith(fresh);
      for (const r of fresh.rows) {
        if (before.get(r.dataset.order) !== r.textContent) r.classList.add("flash");
      }
      const team = await fetch("/console/board/engineers", { credentials: "same-origin", cache: "no-store" });
      const panel = document.getElementById("engineers");
      if (team.ok && panel) {
        const t = document.createElement("template");
        t.innerHTML = await team.text();
        const fresh = t.content.querySelector("#engineers");
        if (fresh) panel.replaceWith(fresh);
      }
      const count = document.getElementById("board-count");
      if (count) count.textContent = fresh.dataset.count;
      document.body.dataset.updated = String(Date.now());
      tick();
    } finally {
      pending = false;
    }
  }
  const es = new EventSource(table.dataset.live);
  const live = document.getElementById("live");
  es.addEventListener("open", () => { if (live) live.hidden = false; });
  es.addEventListener("error", () => { if (live) live.hidden = true; });
  es.addEventListener("change", refresh);
}

function fileFills() {
  for (const input of document.querySelectorAll("input[type=file][data-fills]")) {
    input.addEventListener("change", async () => {
      const target = document.getElementById(input.dataset.fills);
      if (input.files.length && target) target.value = await input.files[0].text();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (board && board.dataset.live) liveBoard(board);
  tick();
  setInterval(tick, 10000);
  fileFills();
});
