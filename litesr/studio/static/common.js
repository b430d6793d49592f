// Shared helpers of the litesr studio pages: the navigation bar, JSON calls and error messages.
"use strict";

const PAGES = [["/", "Upscale"], ["/compare", "Compare"], ["/rate", "Rate"], ["/results", "Results"]];

function renderNav() {
  const header = document.querySelector("header");
  const nav = document.createElement("nav");
  for (const [href, label] of PAGES) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    if (location.pathname === href) a.className = "active";
    nav.appendChild(a);
  }
  header.innerHTML = '<span class="brand">litesr studio</span>';
  header.appendChild(nav);
}

// fetch + JSON, throwing an Error whose message is the server's one-line explanation.
async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) body = await response.json();
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function postJSON(path, payload) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload)});
}

function showError(message) {
  const box = document.getElementById("messages");
  const line = document.createElement("div");
  line.className = "error";
  line.textContent = message;
  box.appendChild(line);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

function fmt(x, digits) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

document.addEventListener("DOMContentLoaded", renderNav);
