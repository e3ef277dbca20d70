/* The job list ("/"): filters in the address bar, pages by cursor, refreshed every 2 s. */
"use strict";

(() => {
  const PAGE_SIZE = 20;
  const REFRESH_MS = 2000;
  const params = new URLSearchParams(location.search);
  const status = document.getElementById("filter-status");
  const name = document.getElementById("filter-name");
  const body = document.getElementById("jobs-body");
  const problemBox = document.getElementById("list-problem");
  const compareButton = document.getElementById("compare-selected");
  const selected = new Set();
  const cursors = [null];  // the cursor of each page seen; the last one is the page shown
  status.value = params.get("status") || "";
  name.value = params.get("name") || "";

  function query() {
    const q = new URLSearchParams({ limit: PAGE_SIZE });
    if (status.value) q.set("status", status.value);
    if (name.value) q.set("name", name.value);
    const cursor = cursors[cursors.length - 1];
    if (cursor) q.set("cursor", cursor);
    return q.toString();
  }

  function row(job) {
    const box = dl.el("input", { type: "checkbox", "aria-label": "select for compare", value: job.id,
                                 checked: selected.has(job.id) });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(job.id); else selected.delete(job.id);
      compareButton.disabled = selected.size < 1;
      compareButton.textContent = `Compare selected (${selected.size})`;
    });
    const bar = dl.el("span", { class: "bar" }, dl.el("span", { class: "fill" }));
    bar.firstChild.style.width = `${job.progress.percent}%`;
    bar.firstChild.style.display = "block";
    return dl.el("tr", { "data-job": job.id },
      dl.el("td", {}, box),
      dl.el("td", {}, dl.el("a", { href: `/jobs/${job.id}`, text: job.name || job.id })),
      dl.el("td", {}, dl.el("span", { class: "status", "data-status": job.status, text: job.status })),
      dl.el("td", {}, bar, ` ${job.progress.percent.toFixed(0)} %`),
      dl.el("td", { class: "num", text: dl.percent(job.metrics.val_accuracy) }),
      dl.el("td", { class: "num", title: job.created_at, text: dl.age(job.created_at) }));
  }

  async function refresh() {
    const answer = await dl.api("/jobs?" + query()).catch(() => null);
    if (!answer) { document.getElementById("live-note").textContent = "service unreachable; retrying"; return; }
    if (!answer.ok) { dl.showProblem(problemBox, answer.body, answer.status); return; }
    dl.showProblem(problemBox, null);
    body.textContent = "";
    if (!answer.body.jobs.length) body.append(dl.el("tr", {}, dl.el("td", { colspan: 6, class: "muted", text: "No jobs." })));
    for (const job of answer.body.jobs) body.append(row(job));
    next.disabled = !answer.body.next_cursor;
    next.dataset.cursor = answer.body.next_cursor || "";
    first.disabled = cursors.length === 1;
    document.getElementById("live-note").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  }

  const next = document.getElementById("page-next");
  const first = document.getElementById("page-first");
  next.addEventListener("click", () => { cursors.push(next.dataset.cursor); refresh(); });
  first.addEventListener("click", () => { cursors.length = 1; refresh(); });
  compareButton.addEventListener("click", () => { location.href = "/compare?jobs=" + [...selected].join(","); });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
