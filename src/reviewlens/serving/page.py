"""The page at ``/``: type a review, see its label and score as you type, and the words that pushed it most.

For a run of more than two labels it also lists every label's probability (``#probabilities``, one ``li`` per
label in the run's order, the answered one marked ``answer``); for two labels that list stays hidden.

When the server needs an API key, the page asks for it and keeps it in the tab's sessionStorage (gone
when the tab closes), sending it as ``Authorization: Bearer KEY``; a 401 asks again, saying why.

The model list is in the page as served (``render_page``), so it is there before the script runs; a server
with an API key serves it empty (the models are behind the key) and the script fills it once a key is given.
Word contributions are shown in the unit the command line and the API use: the change in the probability of
positive (with more labels, of the review's label) when the word is taken out, e.g. ``-0.0574``.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reviewlens</title>
<style>
  :root { --pos: #1a7f37; --neg: #cf222e; --muted: #57606a; font-family: system-ui, sans-serif; }
  body { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; }
  h1 { font-size: 1.4rem; margin-bottom: .25rem; }
  p.hint { color: var(--muted); margin-top: 0; }
  textarea { width: 100%; min-height: 9rem; font: inherit; padding: .6rem; box-sizing: border-box; }
  #verdict { display: flex; align-items: baseline; gap: 1rem; margin: .75rem 0; min-height: 2rem; }
  #label { font-size: 1.4rem; font-weight: 600; }
  #label.positive { color: var(--pos); } #label.negative { color: var(--neg); }
  #score, #status { color: var(--muted); }
  meter { flex: 1; height: .8rem; }
  #terms { list-style: none; padding: 0; display: grid; grid-template-columns: max-content 1fr; gap: .2rem .75rem; }
  #terms li { display: contents; }
  #terms .bar { height: .9rem; align-self: center; border-radius: 2px; }
  #terms .up { background: var(--pos); } #terms .down { background: var(--neg); }
  select, input { font: inherit; }
  #key-form { margin: .75rem 0; padding: .6rem; border: 1px solid #d0d7de; border-radius: 6px; }
  #key-message { color: var(--neg); margin: 0 0 .4rem; }
  #probabilities { list-style: none; padding: 0; display: grid; grid-template-columns: max-content 4rem 1fr;
    gap: .2rem .75rem; margin: 0 0 .75rem; }
  #probabilities li { display: contents; }
  #probabilities .answer { font-weight: 600; }
  #probabilities .bar { height: .9rem; align-self: center; border-radius: 2px; background: var(--muted); }
</style>
</head>
<body>
<h1>reviewlens</h1>
<p class="hint">Type a review: its sentiment updates as you type.
  Model <select id="model" aria-label="model">__MODEL_OPTIONS__</select></p>
<form id="key-form" hidden>
  <p id="key-message"></p>
  <label>API key <input id="key" type="password" autocomplete="off" aria-label="API key"></label>
  <button type="submit">Use this key</button>
</form>
<textarea id="text" aria-label="review" placeholder="A wonderful film, the cast was superb..."></textarea>
<div id="verdict" aria-live="polite">
  <span id="label"></span><span id="score"></span>
  <meter id="meter" min="0" max="1" low="0.5" optimum="1" value="0.5" hidden></meter>
  <span id="status"></span>
</div>
<ul id="probabilities" aria-label="each label's probability" hidden></ul>
<h2 id="terms-heading" style="font-size:1rem" hidden>Words that pushed the score most</h2>
<p id="terms-unit" class="hint" hidden></p>
<ul id="terms"></ul>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let timer = null, sequence = 0, controller = null;

function askForKey(message) {
  $("key-message").textContent = message;
  $("key-form").hidden = false;
  $("key").focus();
}

// fetch with the API key, if one was given; a 401 asks for the key and answers null.
async function api(path, options = {}) {
  const key = sessionStorage.getItem("reviewlens-api-key");
  const headers = { ...(options.headers || {}) };
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    askForKey(key ? "The server refused this API key; enter the right one." : "This server needs an API key.");
    return null;
  }
  return response;
}

async function loadModels() {
  const response = await api("/v1/models");
  if (!response) return;
  const models = await response.json();
  $("model").replaceChildren();
  for (const m of models) {
    const option = new Option(`${m.name} (${m.recipe})`, m.name, m.default, m.default);
    $("model").add(option);
  }
}

function show(result) {
  $("label").textContent = result.label;
  $("label").className = result.label;
  const names = Object.keys(result.probabilities);  // the run's labels: show positive's for two, else the answer's
  const shown = names.length === 2 ? names[1] : result.label;
  $("score").textContent = `${(result.probabilities[shown] * 100).toFixed(1)}% ${shown}`;
  $("meter").hidden = false;
  $("meter").value = result.probabilities[shown];
  const listed = $("probabilities");  // more than two labels: every label's probability, in the run's order
  listed.replaceChildren();
  listed.hidden = names.length === 2;
  if (names.length > 2) {
    for (const name of names) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.className = "name" + (name === result.label ? " answer" : "");
      label.textContent = name;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(result.probabilities[name] * 100).toFixed(1)}%`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${100 * result.probabilities[name]}%`;
      item.append(label, value, bar);
      listed.append(item);
    }
  }
  const terms = $("terms");
  terms.replaceChildren();
  const largest = Math.max(1e-9, ...result.terms.map((t) => Math.abs(t.contribution)));
  for (const t of result.terms) {
    const item = document.createElement("li");
    const word = document.createElement("span");
    word.className = "term";
    word.textContent = `${t.term} ${t.contribution >= 0 ? "+" : "\u2212"}${Math.abs(t.contribution).toFixed(4)}`;
    const bar = document.createElement("span");
    bar.className = "bar " + (t.contribution >= 0 ? "up" : "down");
    bar.style.width = `${(100 * Math.abs(t.contribution)) / largest}%`;
    item.append(word, bar);
    terms.append(item);
  }
  $("terms-heading").hidden = result.terms.length === 0;
  $("terms-unit").hidden = result.terms.length === 0;  // the unit of the figures, as the CLI and the API give them
  $("terms-unit").textContent = `Each figure is the change in the probability of ${shown} when the word is taken ` +
    `out (${result.method}): +0.0500 is 5 percentage points towards ${shown}.`;
  $("status").textContent = result.explained ? "" : "(this model cannot tell which words mattered)";
}

async function update() {
  const text = $("text").value;
  const mine = ++sequence;
  if (controller) controller.abort();
  if (!text.trim()) {
    $("label").textContent = ""; $("score").textContent = ""; $("meter").hidden = true;
    $("probabilities").replaceChildren(); $("probabilities").hidden = true;
    $("terms").replaceChildren(); $("terms-heading").hidden = true; $("terms-unit").hidden = true;
    $("status").textContent = "";
    return;
  }
  controller = new AbortController();
  try {
    const response = await api("/v1/explain", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, model: $("model").value || null, top: 10 }),
      signal: controller.signal,
    });
    if (!response) return;
    const body = await response.json();
    if (mine !== sequence) return;  // a newer keystroke has its own answer coming
    if (!response.ok) {
      $("status").textContent = typeof body.detail === "string" ? body.detail : "invalid input";
      return;
    }
    show(body);
  } catch (error) {
    if (error.name !== "AbortError") $("status").textContent = "the server did not answer";
  }
}

$("text").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 150); });
$("model").addEventListener("change", update);
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("reviewlens-api-key", $("key").value.trim());
  $("key").value = "";
  $("key-form").hidden = true;
  loadModels().then(update);
});
loadModels();
</script>
</body>
</html>
"""


def render_page(models: Iterable[tuple[str, str, bool]]) -> str:
    """The page with its model list filled in: one ``option`` per ``(name, recipe, default)``, escaped."""
    options = "".join(
        f'<option value="{escape(name)}"{" selected" if default else ""}>{escape(name)} ({escape(recipe)})</option>'
        for name, recipe, default in models
    )
    return PAGE.replace("__MODEL_OPTIONS__", options, 1)
