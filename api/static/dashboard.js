/* What every page's script needs: calling the JSON API with the session cookie, building
   elements, formatting numbers and ages.  No framework, no build step. */
"use strict";

const dl = {
  /** Call /api/v1<path>; resolves to {ok, status, body} (body: the parsed JSON, or null). */
  async api(path, options = {}) {
    const headers = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    // same-origin: the browser sends the HttpOnly cookie and an Origin the CSRF check accepts
    const response = await fetch("/api/v1" + path, { credentials: "same-origin", ...options, headers });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { ok: response.ok, status: response.status, body };
  },

  /** An element: el("td", {class: "num"}, "12", otherNode). */
  el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value; else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  },

  /** The JSON a page embedded in <script type="application/json" id="...">. */
  data(id) { return JSON.parse(document.getElementById(id).textContent); },

  percent(fraction) { return fraction === null || fraction === undefined ? "—" : (100 * fraction).toFixed(1) + " %"; },

  number(value, digits = 4) {
    if (value === null || value === undefined) return "—";
    return Math.abs(value) >= 1000 ? value.toLocaleString() : Number(value).toPrecision(digits);
  },

  /** "3 min ago" from an ISO time. */
  age(iso) {
    if (!iso) return "—";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return Math.round(seconds) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  },

  /** Show a problem+json answer (title, detail, each field) in a box, or hide the box. */
  showProblem(box, problem, status) {
    if (!problem && !status) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.textContent = "";
    const title = problem && problem.title ? problem.title : "Request failed";
    box.append(dl.el("strong", { text: `${title} (${status || problem.status})` }));
    if (problem && problem.detail) box.append(dl.el("div", { text: problem.detail }));
  },

  /** Whether a status is final: dljobs.lifecycle's FINISHED, which the page names on <body>. */
  finished(status) { return document.body.dataset.finished.split(" ").includes(status); },

  /** Whether a job in this status may still run (lifecycle's ACTIVE): it can be cancelled. */
  active(status) { return document.body.dataset.active.split(" ").includes(status); },
};
