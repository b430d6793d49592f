// The Upscale page: uploads, one job per image in the server's queue, progress polling, before/after viewer.
"use strict";

const items = [];  // {file, card, upload, job, timer}
let models = [];

async function init() {
  const info = await api("/api/info");
  document.getElementById("limits").textContent =
    `up to ${(info.max_upload_bytes / 2 ** 20).toFixed(0)} MB` +
    (info.max_pixels ? ` and ${(info.max_pixels / 1e6).toFixed(0)} MP per image` : "");
  const precision = document.getElementById("precision");
  for (const p of ["auto", ...info.precisions]) precision.appendChild(el("option", {value: p, text: p}));
  models = (await api("/api/models")).filter((m) => !m.error);
  const select = document.getElementById("model");
  for (const m of models) select.appendChild(el("option", {value: m.id, text: m.label}));
  const checkpoint = models.find((m) => m.id.startsWith("file:"));
  if (checkpoint) select.value = checkpoint.id;  // a --models-dir checkpoint is what the user came for
  select.addEventListener("change", fillScales);
  fillScales();
  document.getElementById("run").addEventListener("click", runAll);
  wireDrop();
  wireViewer();
}

function fillScales() {
  const model = models.find((m) => m.id === document.getElementById("model").value);
  const scale = document.getElementById("scale");
  scale.innerHTML = "";
  for (const s of model ? model.scales : []) scale.appendChild(el("option", {value: s, text: `x${s}`}));
}

function wireDrop() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
}

function addFiles(files) {
  for (const file of files) {
    const item = {file, upload: null, job: null};
    item.card = el("div", {class: "item", "data-name": file.name},
      el("img", {class: "thumb", alt: file.name}),
      el("div", {class: "name", text: file.name, title: file.name}),
      el("div", {class: "meta", text: `${(file.size / 1024).toFixed(1)} KB`}),
      el("div", {class: "state", text: "uploading…"}),
      el("progress", {max: 1, value: 0}),
      el("div", {class: "actions"}));
    document.getElementById("items").appendChild(item.card);
    items.push(item);
    upload(item);
  }
}

async function upload(item) {
  try {
    item.upload = await api(`/api/uploads?name=${encodeURIComponent(item.file.name)}`,
                            {method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: item.file});
    item.card.querySelector("img.thumb").src = `/api/uploads/${item.upload.id}/image`;
    item.card.querySelector(".meta").textContent =
      `${item.upload.width}×${item.upload.height}, ${(item.upload.bytes / 1024).toFixed(1)} KB`;
    setState(item, "ready");
    document.getElementById("run").disabled = false;
  } catch (error) {
    item.card.classList.add("failed");
    setState(item, error.message, true);
    showError(error.message);
  }
}

function setState(item, text, isError = false) {
  const state = item.card.querySelector(".state");
  state.textContent = text;
  state.className = isError ? "state error" : "state";
}

async function runAll() {
  const payload = {model: document.getElementById("model").value, scale: Number(document.getElementById("scale").value),
                   tile: document.getElementById("tile").value, precision: document.getElementById("precision").value};
  for (const item of items) {
    if (!item.upload || (item.job && ["queued", "running"].includes(item.job.state))) continue;
    try {
      item.job = await postJSON("/api/jobs", {...payload, upload: item.upload.id});
      item.card.classList.remove("done", "failed");
      renderJob(item);
      poll(item);
    } catch (error) {
      setState(item, error.message, true);
      showError(error.message);
    }
  }
}

async function poll(item) {
  try {
    item.job = await api(`/api/jobs/${item.job.id}`);
  } catch (error) {
    setState(item, error.message, true);
    return;
  }
  renderJob(item);
  if (["queued", "running"].includes(item.job.state)) setTimeout(() => poll(item), 150);
}

function renderJob(item) {
  const job = item.job;
  item.card.querySelector("progress").value = job.progress;
  item.card.dataset.state = job.state;
  const actions = item.card.querySelector(".actions");
  actions.innerHTML = "";
  if (job.state === "queued") setState(item, job.position ? `queued (${job.position} ahead)` : "queued");
  if (job.state === "running") setState(item, `running ${Math.round(job.progress * 100)}%`);
  if (["queued", "running"].includes(job.state)) {
    const cancel = el("button", {class: "secondary cancel", text: "Cancel"});
    cancel.addEventListener("click", () => postJSON(`/api/jobs/${job.id}/cancel`, {}).catch((e) => showError(e.message)));
    actions.appendChild(cancel);
  }
  if (job.state === "done") {
    item.card.classList.add("done");
    setState(item, `done: ${job.result.width}×${job.result.height} (${job.model} x${job.scale})`);
    actions.appendChild(el("a", {class: "button download", href: `/api/jobs/${job.id}/result`, download: job.result.name,
                                 text: "Download"}));
    const view = el("button", {class: "secondary view", text: "Before/after"});
    view.addEventListener("click", () => openViewer(item));
    actions.appendChild(view);
  }
  if (job.state === "failed") { item.card.classList.add("failed"); setState(item, job.error, true); }
  if (job.state === "cancelled") setState(item, "cancelled");
}

// ------------------------------------------------------------------------------------------- before/after viewer

function openViewer(item) {
  const viewer = document.getElementById("viewer");
  viewer.hidden = false;
  document.getElementById("viewer-title").textContent = `${item.upload.name}: input / ${item.job.model} x${item.job.scale}`;
  const before = document.getElementById("before");
  const after = document.getElementById("after");
  before.src = `/api/uploads/${item.upload.id}/image`;
  after.src = `/api/jobs/${item.job.id}/preview`;
  before.style.width = `${Math.min(item.job.result.width, 860)}px`;
  after.onload = () => { setSplit(); drawLoupes(0.5, 0.5); };
  viewer.scrollIntoView({behavior: "smooth"});
}

function setSplit() {
  const pos = Number(document.getElementById("split-pos").value);
  document.getElementById("after").style.clipPath = `inset(0 0 0 ${pos}%)`;
  document.getElementById("bar").style.left = `${pos}%`;
}

function wireViewer() {
  document.getElementById("split-pos").addEventListener("input", setSplit);
  const split = document.getElementById("split");
  split.addEventListener("mousemove", (e) => {
    const rect = split.getBoundingClientRect();
    drawLoupes((e.clientX - rect.left) / rect.width, (e.clientY - rect.top) / rect.height);
  });
  split.addEventListener("click", (e) => {  // a click moves the split line there
    const rect = split.getBoundingClientRect();
    document.getElementById("split-pos").value = Math.round(100 * (e.clientX - rect.left) / rect.width);
    setSplit();
  });
}

// The same spot of input and result, magnified without smoothing: fx, fy in [0, 1] of the picture.
function drawLoupes(fx, fy) {
  const zoom = Number(document.getElementById("zoom").value);
  for (const [id, canvasId] of [["before", "loupe-before"], ["after", "loupe-after"]]) {
    const img = document.getElementById(id);
    const canvas = document.getElementById(canvasId);
    if (!img.naturalWidth) continue;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    const relative = img.naturalWidth / document.getElementById("after").naturalWidth;  // input pixels per result pixel
    const size = (canvas.width / zoom) * relative;
    const sx = fx * img.naturalWidth - size / 2;
    const sy = fy * img.naturalHeight - size / 2;
    ctx.fillStyle = "#e5e7eb";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, sx, sy, size, size, 0, 0, canvas.width, canvas.height);
  }
}

document.addEventListener("DOMContentLoaded", () => init().catch((e) => showError(e.message)));
