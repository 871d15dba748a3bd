// The web view's few lines of script: sign every request with Telegram's init data,
// fetch the server's HTML fragments, and post staff decisions. No framework, no build.
"use strict";

const tg = window.Telegram && window.Telegram.WebApp;
const base = document.body.dataset.base || "";
// Telegram hands the signed init data to its script; opened by hand (the demo), the
// same data comes in the address's fragment, as Telegram itself passes it.
const initData = (tg && tg.initData) ||
  new URLSearchParams(location.hash.slice(1)).get("tgWebAppData") || "";
const view = document.getElementById("view");
const tabs = document.getElementById("tabs");
let texts = { loading: "…", failed: "Something went wrong. Pull down to try again." };
let current = "";

function applyTheme() {
  const params = (tg && tg.themeParams) || {};
  const root = document.documentElement.style;
  for (const [key, value] of Object.entries(params)) {
    root.setProperty("--tg-" + key.replace(/_/g, "-"), value);
  }
  const dark = tg && tg.colorScheme ? tg.colorScheme === "dark"
    : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.classList.toggle("dark", dark);
}

async function call(path, options = {}) {
  const headers = Object.assign({ Authorization: "tma " + initData }, options.headers || {});
  const response = await fetch(base + path, Object.assign({}, options, { headers }));
  if (!response.ok) throw new Error(String(response.status));
  return response;
}

let asked = 0;

async function show(path) {
  // Only the latest request is shown: an answer overtaken by a newer one (a search typed
  // on) would put old results and old text back.
  const ticket = ++asked;
  view.setAttribute("aria-busy", "true");
  try {
    const html = await (await call(path)).text();
    if (ticket !== asked) return;
    view.innerHTML = html;
    afterShow();
  } catch (error) {
    view.innerHTML = "";
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = texts.failed;
    view.append(p);
  } finally {
    view.removeAttribute("aria-busy");
  }
}

function afterShow() {
  const chart = document.getElementById("chart");
  if (chart) {
    call("/api/chart.png").then(r => r.blob()).then(b => { chart.src = URL.createObjectURL(b); })
      .catch(() => chart.remove());
  }
}

function open(tab) {
  current = tab;
  for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-current", String(b.dataset.tab === tab));
  show("/page/" + tab);
}

function query(form) {
  return new URLSearchParams(new FormData(form)).toString();
}

let typing;
view.addEventListener("input", event => {
  const form = event.target.closest("form[data-form]");
  if (!form) return;
  clearTimeout(typing);
  // A search typed letter by letter asks once it pauses; a select asks at once.
  const wait = event.target.type === "search" || event.target.type === "number" ? 250 : 0;
  typing = setTimeout(async () => {
    const focused = document.activeElement && document.activeElement.name;
    await show("/page/" + form.dataset.form + "?" + query(form));
    const again = focused && view.querySelector(`[name="${focused}"]`);
    if (again) { again.focus(); if (again.setSelectionRange && again.type === "search") again.setSelectionRange(again.value.length, again.value.length); }
  }, wait);
});

view.addEventListener("submit", event => {
  event.preventDefault();
  const form = event.target;
  if (form.dataset.reason) decideOn(form.dataset.reason, false, form.elements.reason.value);
});

view.addEventListener("click", event => {
  const target = event.target.closest("button");
  if (!target) return;
  if (target.dataset.open) show("/page/registration/" + encodeURIComponent(target.dataset.open));
  else if (target.dataset.tab) open(target.dataset.tab);
  else if (target.dataset.decide) {
    if (target.dataset.grant === "1") decideOn(target.dataset.decide, true, "");
    else {
      const form = view.querySelector(`form[data-reason="${target.dataset.decide}"]`);
      form.hidden = false;
      form.elements.reason.focus();
    }
  }
});

async function decideOn(item, grant, reason) {
  const card = document.getElementById("item-" + item);
  for (const b of card.querySelectorAll("button")) b.disabled = true;
  let answer = { done: false, said: texts.failed };
  try {
    answer = await (await call("/api/decide", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item: Number(item), grant, reason }),
    })).json();
  } catch (error) { /* said below */ }
  card.querySelector(".said").textContent = answer.said;
  card.classList.add(answer.done ? "decided" : "refused");
  if (!answer.done && !/already|già/i.test(answer.said)) {
    for (const b of card.querySelectorAll("button")) b.disabled = false;
  }
}

async function start() {
  if (tg) { tg.ready(); tg.expand(); if (tg.onEvent) tg.onEvent("themeChanged", applyTheme); }
  applyTheme();
  let me;
  try {
    me = await (await call("/api/me")).json();
  } catch (error) {
    view.innerHTML = "";
    return;
  }
  texts = me;
  document.documentElement.lang = me.language;
  for (const [key, label] of me.tabs) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.tab = key;
    b.textContent = label;
    tabs.append(b);
  }
  tabs.addEventListener("click", e => { const b = e.target.closest("button"); if (b) open(b.dataset.tab); });
  if (me.tabs.length) open(me.tabs[0][0]);
}

start();
