// The Rate page: a blind session of 1-5 ratings and A/B preferences, one trial at a time; every answer is stored
// by the server before the next trial shows. Image URLs carry only the session and trial number.
"use strict";

const LABELS = ["1 bad", "2 poor", "3 fair", "4 good", "5 excellent"];
let session = null;

async function init() {
  const groups = (await api("/api/info")).groups;
  const select = document.getElementById("group");
  for (const g of groups) select.appendChild(el("option", {value: g, text: g}));
  if (!groups.length) showError("no evaluation runs to rate: start litesr studio with --runs DIR");
  document.getElementById("begin").addEventListener("click", begin);
  const resume = location.hash.slice(1);
  if (resume) { session = await api(`/api/rate/sessions/${resume}`); next(); }
}

async function begin() {
  try {
    const made = await postJSON("/api/rate/sessions", {
      rater: document.getElementById("rater").value, group: document.getElementById("group").value,
      images: Number(document.getElementById("count").value) || null,
      pairs: document.getElementById("pairs").value === "1"});
    location.hash = made.session;
    session = await api(`/api/rate/sessions/${made.session}`);
    next();
  } catch (error) {
    showError(error.message);
  }
}

function next() {
  document.getElementById("start").hidden = true;
  const open = session.trials.filter((t) => !t.answered);
  if (!open.length) {
    document.getElementById("trial").hidden = true;
    document.getElementById("finished").hidden = false;
    return;
  }
  const trial = open[0];
  const done = session.trials.length - open.length;
  document.getElementById("trial").hidden = false;
  document.getElementById("progressline").textContent = `Trial ${done + 1} of ${session.trials.length}`;
  const stimuli = document.getElementById("stimuli");
  const answers = document.getElementById("answers");
  stimuli.innerHTML = answers.innerHTML = "";
  stimuli.dataset.kind = trial.kind;
  const base = `/api/rate/sessions/${session.session}/trials/${trial.index}`;
  if (trial.kind === "abs") {
    stimuli.appendChild(el("figure", {}, el("img", {src: `${base}/a`, alt: "picture to rate"})));
    LABELS.forEach((label, i) => answers.appendChild(answerButton(label, trial, {score: i + 1})));
  } else {
    stimuli.appendChild(el("figure", {}, el("img", {src: `${base}/a`, alt: "left"}), el("figcaption", {text: "left"})));
    stimuli.appendChild(el("figure", {}, el("img", {src: `${base}/b`, alt: "right"}), el("figcaption", {text: "right"})));
    answers.appendChild(answerButton("Left is better", trial, {choice: "a"}));
    answers.appendChild(answerButton("Right is better", trial, {choice: "b"}));
  }
}

function answerButton(label, trial, payload) {
  const button = el("button", {class: "answer", text: label});
  button.addEventListener("click", async () => {
    for (const b of document.querySelectorAll("#answers button")) b.disabled = true;
    try {
      await postJSON(`/api/rate/sessions/${session.session}/trials/${trial.index}`, payload);
      trial.answered = true;
    } catch (error) {
      showError(error.message);
    }
    next();
  });
  return button;
}

document.addEventListener("DOMContentLoaded", () => init().catch((e) => showError(e.message)));
