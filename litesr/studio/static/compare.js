// The Compare page: a PSNR/SSIM table of the runs of one dataset and scale, and for each image the same zoomed
// crop from HR, bicubic and every run, the crop chosen by a click on the picture.
"use strict";

let groups = [];

async function init() {
  groups = await api("/api/compare");
  const select = document.getElementById("group");
  for (const g of groups) select.appendChild(el("option", {value: g.key, text: `${g.key} (${g.runs.length} runs)`}));
  if (!groups.length) { showError("no evaluation runs: start litesr studio with --runs DIR (from litesr eval --save-images DIR)"); return; }
  select.addEventListener("change", render);
  for (const id of ["crop", "zoom"]) document.getElementById(id).addEventListener("change", redrawAll);
  render();
}

function imageURL(group, image, condition) {
  const q = new URLSearchParams({group: group.key, image, condition});
  return `/api/compare/image?${q}`;
}

function render() {
  const group = groups.find((g) => g.key === document.getElementById("group").value);
  renderTable(group);
  const box = document.getElementById("images");
  box.innerHTML = "";
  for (const image of group.images) box.appendChild(renderImage(group, image));
}

function renderTable(group) {
  const head = el("tr", {}, el("th", {text: "image"}));
  for (const run of group.runs) head.appendChild(el("th", {text: `${run.label} PSNR / SSIM`}));
  const table = el("table", {id: "metrics"}, head);
  const rows = group.images.map((image) => [image, group.runs.map((r) => r.metrics[image] || [null, null])]);
  rows.push(["mean", group.runs.map((r) => [r.psnr, r.ssim])]);
  for (const [name, values] of rows) {
    const best = Math.max(...values.map((v) => (v[0] === null ? -Infinity : v[0])));
    const tr = el("tr", {"data-image": name}, el("td", {text: name}));
    for (const [psnr, ssim] of values) {
      tr.appendChild(el("td", {class: psnr === best && values.length > 1 ? "best" : "", text: `${fmt(psnr, 2)} / ${fmt(ssim, 4)}`}));
    }
    table.appendChild(tr);
  }
  const holder = document.getElementById("table");
  holder.innerHTML = "";
  holder.appendChild(table);
}

function renderImage(group, image) {
  const picture = el("img", {src: imageURL(group, image, "HR"), alt: `${image} HR`});
  const box = el("div", {class: "box"});
  const pick = el("div", {class: "pick"}, picture, box);
  const crops = el("div", {class: "crops"});
  const block = el("section", {class: "panel image-block", "data-image": image},
    el("div", {}, el("h2", {text: image}), pick, el("div", {class: "muted crop-pos"})), crops);
  const state = {group, image, picture, box, crops, block, cx: null, cy: null, sources: []};
  for (const condition of group.conditions) {
    const source = new Image();
    source.src = imageURL(group, image, condition);
    const canvas = el("canvas", {class: "zoom", "data-condition": condition});
    crops.appendChild(el("figure", {}, canvas, el("figcaption", {text: condition})));
    state.sources.push({condition, source, canvas});
    source.onload = () => draw(state);
  }
  picture.addEventListener("load", () => {
    if (state.cx === null) { state.cx = Math.floor(picture.naturalWidth / 2); state.cy = Math.floor(picture.naturalHeight / 2); }
    draw(state);
  });
  pick.addEventListener("click", (e) => {
    const rect = picture.getBoundingClientRect();
    state.cx = Math.floor(((e.clientX - rect.left) / rect.width) * picture.naturalWidth);
    state.cy = Math.floor(((e.clientY - rect.top) / rect.height) * picture.naturalHeight);
    draw(state);
  });
  block.state = state;
  return block;
}

function redrawAll() {
  for (const block of document.querySelectorAll(".image-block")) draw(block.state);
}

// The crop: `size` HR pixels square around the chosen point (kept inside the picture), drawn at `zoom` without
// smoothing. The block records its top-left corner for tests and for anyone reproducing the figure.
function draw(state) {
  const {picture} = state;
  if (!picture.naturalWidth || state.cx === null) return;
  const size = Math.min(Number(document.getElementById("crop").value), picture.naturalWidth, picture.naturalHeight);
  const zoom = Number(document.getElementById("zoom").value);
  const x = Math.max(0, Math.min(picture.naturalWidth - size, state.cx - Math.floor(size / 2)));
  const y = Math.max(0, Math.min(picture.naturalHeight - size, state.cy - Math.floor(size / 2)));
  state.block.dataset.crop = `${x},${y},${size}`;
  state.block.querySelector(".crop-pos").textContent = `crop ${size}×${size} at (${x}, ${y})`;
  const scaleView = picture.getBoundingClientRect().width / picture.naturalWidth || 1;
  Object.assign(state.box.style, {left: `${x * scaleView}px`, top: `${y * scaleView}px`,
                                  width: `${size * scaleView}px`, height: `${size * scaleView}px`});
  for (const {source, canvas} of state.sources) {
    canvas.width = canvas.height = size * zoom;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    if (source.naturalWidth) ctx.drawImage(source, x, y, size, size, 0, 0, size * zoom, size * zoom);
  }
}

document.addEventListener("DOMContentLoaded", () => init().catch((e) => showError(e.message)));
