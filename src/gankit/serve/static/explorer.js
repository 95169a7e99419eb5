// gankit explorer: a plain page over the JSON/PNG routes of gankit.serve.app. No build step.
"use strict";

const $ = (id) => document.getElementById(id);
let runs = [];
let run = null;

function params(extra) {
  const q = new URLSearchParams({ run: String(run.index), ...extra });
  if (run.has_ema) q.set("ema", $("ema").checked ? "true" : "false");
  return q.toString();
}

function showError(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

// Fetch an image into <img>, newest request wins; the link downloads the same bytes.
const latest = new Map();
async function showImage(img, url, errorEl, link, init) {
  const token = (latest.get(img) || 0) + 1;
  latest.set(img, token);
  img.classList.add("loading");
  try {
    const response = await fetch(url, init);
    if (latest.get(img) !== token) return;
    if (!response.ok) {
      showError(errorEl, await errorOf(response));
      return;
    }
    const blob = await response.blob();
    if (latest.get(img) !== token) return;
    const old = img.src;
    img.src = URL.createObjectURL(blob);
    await img.decode().catch(() => {});
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    img.dataset.query = url;
    if (link) { link.href = img.src; link.hidden = false; }
    showError(errorEl, "");
  } catch (e) {
    if (latest.get(img) === token) showError(errorEl, `request failed: ${e.message}`);
  } finally {
    if (latest.get(img) === token) img.classList.remove("loading");
  }
}

function debounce(fn, ms = 120) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

// --- samples -------------------------------------------------------------------------------
function sampleQuery() {
  const extra = { seed: $("seed").value || "0", n: $("n").value || "16",
                  noise_std: $("noise-std").value };
  if ($("trunc-on").checked) extra.truncation = $("truncation").value;
  if (run.classes.length && $("class").value !== "") extra.class = $("class").value;
  return params(extra);
}
const updateSamples = debounce(() => {
  if (!run || !run.generative) return;
  showImage($("sample-img"), `/api/sample.png?${sampleQuery()}`, $("samples-error"), $("sample-download"));
});
function setSeed(value) {
  $("seed").value = String(Math.max(0, value));
  updateSamples();
}

// --- walk ----------------------------------------------------------------------------------
function walkQuery(extra) {
  const q = { a: $("walk-a").value || "0", b: $("walk-b").value || "1", mode: $("walk-mode").value, ...extra };
  if (run.classes.length) q.class = $("class").value === "" ? "0" : $("class").value;
  return params(q);
}
const updateWalk = debounce(() => {
  if (!run || !run.generative) return;
  $("walk-t-value").textContent = $("walk-t").value;
  showImage($("walk-img"), `/api/walk.png?${walkQuery({ t: $("walk-t").value })}`, $("walk-error"), $("walk-png"));
  $("walk-gif").href = `/api/walk.gif?${walkQuery({ steps: "16" })}`;
  $("walk-mp4").href = `/api/walk.mp4?${walkQuery({ steps: "16" })}`;
}, 30);

// --- style mixing --------------------------------------------------------------------------
const updateMix = debounce(() => {
  if (!run || !run.w_space) return;
  const q = { rows: $("mix-rows").value, cols: $("mix-cols").value, layers: $("mix-layers").value,
              psi: $("mix-psi").value };
  if (run.classes.length && $("class").value !== "") q.class = $("class").value;
  showImage($("mix-img"), `/api/style-mix.png?${params(q)}`, $("mix-error"), $("mix-download"));
}, 250);

// --- uploads: translation and projection ---------------------------------------------------
function upload(fileInput) {
  const file = fileInput.files[0];
  return file ? { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } } : null;
}
function translate() {
  const init = upload($("translate-file"));
  if (!run || !run.translator || !init) return;
  const q = new URLSearchParams({ run: String(run.index), direction: $("translate-direction").value });
  showImage($("translate-img"), `/api/translate.png?${q}`, $("translate-error"), $("translate-download"), init);
}

let polling = null;
async function project() {
  const init = upload($("project-file"));
  if (!init) { showError($("project-error"), "choose an image file first"); return; }
  const q = { steps: $("project-steps").value, distance: $("project-distance").value };
  if (run.w_space && $("project-wplus").checked) q.w_plus = "true";
  if (run.classes.length && $("class").value !== "") q.class = $("class").value;
  const url = `/api/project?${new URLSearchParams({ run: String(run.index), ...q })}`;
  showError($("project-error"), "");
  $("project-files").textContent = "";
  const response = await fetch(url, init);
  if (!response.ok) { showError($("project-error"), await errorOf(response)); return; }
  const job = await response.json();
  clearInterval(polling);
  polling = setInterval(() => poll(job.id), 400);
}
async function poll(id) {
  const response = await fetch(`/api/project/${id}`);
  if (!response.ok) { clearInterval(polling); showError($("project-error"), await errorOf(response)); return; }
  const job = await response.json();
  $("project-progress").max = job.steps;
  $("project-progress").value = job.step;
  $("project-status").textContent = `${job.status}: step ${job.step} of ${job.steps} (${job.distance})`;
  if (job.step > 0) {
    showImage($("project-img"), `/api/project/${id}/preview.png?step=${job.step}`, $("project-error"));
  }
  if (job.status === "running") return;
  clearInterval(polling);
  $("project-status").dataset.status = job.status;
  if (job.error) { showError($("project-error"), job.error); return; }
  $("project-status").textContent += ` — ${job.space}, distance ${Number(job.value).toPrecision(4)}` +
    (job.label === null ? "" : `, class ${run.classes[job.label]}`);
  const links = $("project-files");
  for (const name of job.files) {
    const a = document.createElement("a");
    a.href = `/api/project/${id}/${name}`;
    a.textContent = name;
    a.download = name;
    links.append(a, " ");
  }
}

// --- curves --------------------------------------------------------------------------------
function chart(name, points) {
  const w = 300, h = 150, pad = 6;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + (w - 2 * pad) * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
  const sy = (y) => h - pad - (h - 2 * pad) * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
  const line = points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
  const div = document.createElement("div");
  div.className = "chart";
  div.innerHTML = `<svg viewBox="0 0 ${w} ${h}"><polyline fill="none" stroke="#3367d6" stroke-width="1.4" points="${line}"/></svg>`;
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = `${name}: ${y0.toPrecision(3)} … ${y1.toPrecision(3)} (steps ${x0}–${x1})`;
  div.prepend(title);
  return div;
}
async function updateCurves() {
  $("charts").textContent = "";
  $("events").textContent = "";
  const response = await fetch(`/api/curves?run=${run.index}`);
  if (!response.ok) { showError($("curves-error"), await errorOf(response)); return; }
  showError($("curves-error"), "");
  const data = await response.json();
  for (const [name, points] of Object.entries(data.series)) {
    if (points.length > 1) $("charts").append(chart(name, points));
  }
  for (const e of data.events) {
    const li = document.createElement("li");
    li.className = e.event === "config_change" ? "" : "warn";
    li.textContent = `step ${e.step}: ${e.event}${e.message ? " — " + e.message : ""}`;
    $("events").append(li);
  }
  if (!data.events.length) $("events").innerHTML = "<li>no health events</li>";
}

// --- runs ----------------------------------------------------------------------------------
function selectRun(index) {
  run = runs[index];
  showError($("run-error"), run.error ? `${run.name} could not be loaded: ${run.error}` : "");
  $("run-info").textContent = run.error ? "" :
    `${run.task} run, step ${run.step}, ${run.image_size}×${run.image_size}` + (run.w_space ? `, W space (${run.num_ws} ws)` : "");
  for (const section of document.querySelectorAll("section[data-needs]")) {
    section.hidden = Boolean(run.error) || !run[section.dataset.needs];
  }
  $("curves").hidden = Boolean(run.error);
  if (run.error) return;
  const cls = $("class");
  cls.textContent = "";
  cls.append(new Option("every class in turn", ""));
  run.classes.forEach((name, i) => cls.append(new Option(name, String(i))));
  for (const el of document.querySelectorAll(".cond")) el.hidden = !run.classes.length;
  for (const el of document.querySelectorAll(".ema")) el.hidden = !run.has_ema;
  for (const el of document.querySelectorAll(".w-only")) el.hidden = !run.w_space;
  for (const el of document.querySelectorAll(".z-only")) el.hidden = run.w_space;
  $("ema").checked = run.has_ema;
  $("mix-num-ws").textContent = run.w_space ? `layers 0–${run.num_ws - 1}` : "";
  updateSamples(); updateWalk(); updateMix(); updateCurves();
}

async function start() {
  const response = await fetch("/api/runs");
  if (!response.ok) { showError($("run-error"), await errorOf(response)); return; }
  const data = await response.json();
  runs = data.runs;
  runs.forEach((r, i) => $("run").append(new Option(r.error ? `${r.name} (error)` : r.name, String(i))));
  for (const d of data.distances) $("project-distance").append(new Option(d, d));
  if (!data.mp4) $("walk-mp4").hidden = true;  // no MP4 encoder: pip install -e ".[video]"
  $("project-distance").value = data.distance;
  $("run").addEventListener("change", () => selectRun(Number($("run").value)));
  for (const id of ["seed", "n", "trunc-on", "truncation", "noise-std", "ema", "class"]) {
    $(id).addEventListener("input", () => {
      $("truncation-value").textContent = $("truncation").value;
      $("noise-std-value").textContent = $("noise-std").value;
      updateSamples();
      if (id === "class" || id === "ema") { updateWalk(); updateMix(); }
    });
  }
  $("seed-prev").addEventListener("click", () => setSeed(Number($("seed").value) - 1));
  $("seed-next").addEventListener("click", () => setSeed(Number($("seed").value) + 1));
  $("seed-random").addEventListener("click", () => setSeed(Math.floor(Math.random() * 100000)));
  for (const id of ["walk-a", "walk-b", "walk-mode", "walk-t"]) $(id).addEventListener("input", updateWalk);
  for (const id of ["mix-rows", "mix-cols", "mix-layers", "mix-psi"]) $(id).addEventListener("input", updateMix);
  $("translate-file").addEventListener("change", translate);
  $("translate-direction").addEventListener("change", translate);
  $("project-start").addEventListener("click", project);
  if (runs.length) selectRun(0);
}

start();
