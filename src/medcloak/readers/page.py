"""The reader web page: HTML, CSS and JavaScript served by :mod:`medcloak.readers.app`.

Self-contained (no CDN, no external fonts or scripts). Keyboard: ``1``-``5`` vessel
visibility, ``L`` / ``R`` / ``C`` artery (C = cannot tell), ``Y`` / ``N`` / ``U`` stenosis
(U = cannot tell), ``Enter`` submits. Every control is also a button.
"""

__all__ = ["INDEX_HTML", "APP_CSS", "APP_JS"]

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medcloak reader study</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header>
  <h1>medcloak reader study</h1>
  <span id="progress" aria-live="polite"></span>
  <span id="who"></span>
</header>
<main>
<section id="login">
  <form id="login-form">
    <label for="token">Your reader code</label>
    <input id="token" name="token" maxlength="256" autocomplete="off" spellcheck="false" required autofocus>
    <button type="submit" id="start">Start</button>
  </form>
  <p id="login-message" class="message" role="alert"></p>
  <p class="hint">The study organiser gives each reader a personal code
  (<code>medcloak readers add</code>); keep it to yourself. A returning reader continues where they stopped. Images come in a random
  order, and you are not told how each image was made. Answer from what you see.</p>
</section>
<section id="study" hidden>
  <div class="viewer"><img id="image" alt="Angiography frame to assess"></div>
  <div class="questions">
    <fieldset>
      <legend>Vessels visible <span class="keys">keys 1&ndash;5</span></legend>
      <div class="scale">
        <button type="button" data-q="visibility" data-v="1"><kbd>1</kbd> none</button>
        <button type="button" data-q="visibility" data-v="2"><kbd>2</kbd> faint</button>
        <button type="button" data-q="visibility" data-v="3"><kbd>3</kbd> partly</button>
        <button type="button" data-q="visibility" data-v="4"><kbd>4</kbd> mostly</button>
        <button type="button" data-q="visibility" data-v="5"><kbd>5</kbd> clearly</button>
      </div>
    </fieldset>
    <fieldset>
      <legend>Which artery</legend>
      <button type="button" data-q="artery" data-v="LCA"><kbd>L</kbd> LCA</button>
      <button type="button" data-q="artery" data-v="RCA"><kbd>R</kbd> RCA</button>
      <button type="button" data-q="artery" data-v="unsure"><kbd>C</kbd> cannot tell</button>
    </fieldset>
    <fieldset>
      <legend>Stenosis visible</legend>
      <button type="button" data-q="stenosis" data-v="yes"><kbd>Y</kbd> yes</button>
      <button type="button" data-q="stenosis" data-v="no"><kbd>N</kbd> no</button>
      <button type="button" data-q="stenosis" data-v="unsure"><kbd>U</kbd> cannot tell</button>
    </fieldset>
    <button type="button" id="submit" disabled>Submit <kbd>Enter</kbd></button>
    <p id="message" class="message" role="alert"></p>
    <p class="hint"><a href="#" id="switch">Not you? Change reader</a></p>
  </div>
</section>
<section id="done" hidden>
  <h2>All images answered</h2>
  <p>Thank you. Your answers are saved; you can close this page.</p>
</section>
</main>
<script src="/app.js"></script>
</body>
</html>
"""

APP_CSS = """
:root { color-scheme: dark; --accent: #4ea1ff; }
* { box-sizing: border-box; }
body { margin: 0; background: #111; color: #e8e8e8; font: 16px/1.4 system-ui, sans-serif; }
header { display: flex; gap: 2em; align-items: baseline; padding: .6em 1.2em; background: #1c1c1c;
         border-bottom: 1px solid #333; }
header h1 { font-size: 1.1em; margin: 0; font-weight: 600; }
#progress { font-weight: 600; color: var(--accent); }
#who { margin-left: auto; color: #aaa; }
main { padding: 1.2em; }
#login { max-width: 32em; margin: 3em auto; }
#login form { display: flex; gap: .6em; align-items: center; }
#login input { flex: 1; font-size: 1em; padding: .4em; background: #222; color: inherit;
               border: 1px solid #555; border-radius: 4px; }
#study:not([hidden]) { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
.viewer { background: #000; padding: 6px; border: 1px solid #333; }
#image { display: block; width: min(72vh, 58vw); height: min(72vh, 58vw); min-width: 256px; min-height: 256px;
         image-rendering: pixelated; object-fit: contain; }
.questions { min-width: 20em; max-width: 30em; }
fieldset { border: 1px solid #444; border-radius: 6px; margin: 0 0 1em; padding: .6em .8em .8em; }
legend { padding: 0 .3em; font-weight: 600; }
.keys { font-weight: 400; color: #999; font-size: .85em; }
.scale { display: flex; gap: .3em; }
button { font: inherit; padding: .4em .7em; margin: .15em; background: #2a2a2a; color: inherit;
         border: 1px solid #555; border-radius: 4px; cursor: pointer; }
button:hover { border-color: var(--accent); }
button[aria-pressed="true"] { background: var(--accent); color: #000; border-color: var(--accent); }
#submit { width: 100%; padding: .6em; font-weight: 600; margin: 0; }
#submit:not(:disabled) { background: #2e7d32; border-color: #2e7d32; }
#submit:disabled { opacity: .45; cursor: default; }
kbd { font: .8em ui-monospace, monospace; border: 1px solid #777; border-radius: 3px;
      padding: 0 .3em; background: #1a1a1a; color: #ddd; }
button[aria-pressed="true"] kbd { background: #cde; color: #000; }
.message { color: #ff8a80; min-height: 1.4em; }
.hint { color: #999; font-size: .9em; }
a { color: var(--accent); }
"""

APP_JS = r"""
"use strict";
const $ = (id) => document.getElementById(id);
const STORE = "medcloak-reader-token";
let state = null;      // {reader, total, done, item: {id, image} | null}
let token = "";
let answer = {};
let shownAt = 0;
let busy = false;

async function api(path, body) {
  const opts = body === undefined ? {cache: "no-store"} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({error: r.status + " " + r.statusText}));
  if (!r.ok) throw new Error(data.error || (r.status + " " + r.statusText));
  return data;
}

function show(which) {
  for (const id of ["login", "study", "done"]) $(id).hidden = id !== which;
}

function render(s) {
  state = s;
  answer = {};
  $("who").textContent = "Reader: " + s.reader;
  document.querySelectorAll("button[data-q]").forEach((b) => b.setAttribute("aria-pressed", "false"));
  $("submit").disabled = true;
  $("message").textContent = "";
  if (!s.item) {
    $("progress").textContent = s.done + " of " + s.total + " done";
    show("done");
    return;
  }
  $("progress").textContent = "Image " + (s.done + 1) + " of " + s.total;
  const img = $("image");
  img.dataset.ready = "0";      // hidden until the new image has loaded: no answer for a stale one
  img.style.visibility = "hidden";
  img.dataset.item = s.item.id;
  img.src = s.item.image;
  show("study");
}

function loaded() {
  const img = $("image");
  if (!state || !state.item || img.dataset.item !== state.item.id) return;
  img.dataset.ready = "1";
  img.style.visibility = "visible";
  shownAt = performance.now();
}

function ready() {
  return answer.visibility !== undefined && answer.artery !== undefined && answer.stenosis !== undefined;
}

function choose(q, v) {
  if (!state || !state.item || busy || $("image").dataset.ready !== "1") return;
  answer[q] = q === "visibility" ? Number(v) : v;
  document.querySelectorAll('button[data-q="' + q + '"]').forEach(
    (b) => b.setAttribute("aria-pressed", String(b.dataset.v === String(v))));
  $("submit").disabled = !ready();
}

async function submit() {
  if (busy || !state || !state.item || !ready() || $("image").dataset.ready !== "1") return;
  busy = true;
  $("submit").disabled = true;
  try {
    render(await api("/api/answer", {
      token: token, item: state.item.id, visibility: answer.visibility,
      artery: answer.artery, stenosis: answer.stenosis,
      elapsed_ms: Math.round(performance.now() - shownAt)}));
  } catch (e) {
    $("message").textContent = e.message;
    $("submit").disabled = !ready();
  } finally {
    busy = false;
  }
}

async function start(code) {
  $("login-message").textContent = "";
  try {
    const s = await api("/api/start", {token: code.trim()});
    token = code.trim();
    localStorage.setItem(STORE, token);
    render(s);
  } catch (e) {
    token = "";
    localStorage.removeItem(STORE);
    $("login-message").textContent = e.message;
    show("login");
  }
}

const KEYS = {
  "1": ["visibility", 1], "2": ["visibility", 2], "3": ["visibility", 3],
  "4": ["visibility", 4], "5": ["visibility", 5],
  "l": ["artery", "LCA"], "r": ["artery", "RCA"], "c": ["artery", "unsure"],
  "y": ["stenosis", "yes"], "n": ["stenosis", "no"], "u": ["stenosis", "unsure"],
};

document.addEventListener("keydown", (ev) => {
  if ($("study").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target instanceof HTMLInputElement) return;
  if (ev.key === "Enter") { ev.preventDefault(); submit(); return; }
  const hit = KEYS[ev.key.toLowerCase()];
  if (hit) { ev.preventDefault(); choose(hit[0], hit[1]); }
});

document.querySelectorAll("button[data-q]").forEach((b) =>
  b.addEventListener("click", () => choose(b.dataset.q, b.dataset.v)));
$("submit").addEventListener("click", submit);
$("image").addEventListener("load", loaded);
$("image").addEventListener("error", () => { $("message").textContent = "the image could not be loaded; reload the page"; });
$("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); start($("token").value); });
$("switch").addEventListener("click", (ev) => {
  ev.preventDefault();
  localStorage.removeItem(STORE);
  state = null;
  token = "";
  $("who").textContent = "";
  $("progress").textContent = "";
  $("token").value = "";
  show("login");
  $("token").focus();
});

const saved = localStorage.getItem(STORE);
if (saved) start(saved);
"""
