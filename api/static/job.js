/* A job's page: status, progress and diagnostics refreshed while it runs; the curves grow
   with the points the worker writes (the whole history downsampled first, then each new
   page of points appended); the confusion matrix of the last epoch; cancel and rerun. */
"use strict";

(() => {
  const REFRESH_MS = 1500;
  let job = dl.data("job-data");
  const id = job.id;
  const iterations = { x: [], loss: [], lr: [] };
  const epochs = { x: [], train: [], val: [] };
  let since = -1;
  let confusion = null;
  let stored = 0;  // points read so far (downsampled history plus what came since)

  function take(points) {
    for (const p of points) {
      if (p.kind === "iteration") {
        iterations.x.push(p.iteration); iterations.loss.push(p.values.loss ?? null); iterations.lr.push(p.values.lr ?? null);
      } else {
        epochs.x.push(p.epoch); epochs.train.push(p.values.train_accuracy ?? null); epochs.val.push(p.values.val_accuracy ?? null);
        if (p.values.confusion) confusion = p.values.confusion;
      }
    }
    stored += points.length;
  }

  function draw() {
    charts.line(document.getElementById("chart-loss"), "iteration", [{ label: "loss" }],
                [iterations.x, iterations.loss], { yLabel: "loss" });
    charts.line(document.getElementById("chart-lr"), "iteration", [{ label: "learning rate", color: "#9333ea" }],
                [iterations.x, iterations.lr], { yLabel: "lr" });
    charts.line(document.getElementById("chart-accuracy"), "epoch",
                [{ label: "train accuracy" }, { label: "val accuracy", color: "#16a34a" }],
                [epochs.x, epochs.train, epochs.val], { yLabel: "accuracy" });
    document.getElementById("points-note").textContent =
      `${iterations.x.length.toLocaleString()} iteration points drawn (the history is downsampled to ` +
      `${document.body.dataset.chartPoints} per kind, each bucket's lowest and highest loss kept)`;
    drawConfusion();
  }

  function drawConfusion() {
    const box = document.getElementById("confusion");
    if (!confusion) return;
    const most = Math.max(1, ...confusion.flat());
    const table = dl.el("table", { class: "confusion", id: "confusion-table" });
    table.append(dl.el("tr", {}, dl.el("th", { text: "true \\ predicted" }),
                       ...confusion.map((_, j) => dl.el("th", { text: j }))));
    confusion.forEach((counts, i) => {
      const tr = dl.el("tr", {}, dl.el("th", { text: i }));
      counts.forEach((count, j) => {
        const cell = dl.el("td", { text: count, title: `true ${i}, predicted ${j}: ${count}` });
        const strength = count / most;
        cell.style.background = i === j ? `rgba(22,163,74,${0.15 + 0.6 * strength})`
                                        : (count ? `rgba(220,38,38,${0.1 + 0.6 * strength})` : "");
        tr.append(cell);
      });
      table.append(tr);
    });
    box.textContent = "";
    box.append(table);
  }

  function showJob() {
    const badge = document.getElementById("job-status");
    badge.textContent = job.status;
    badge.dataset.status = job.status;
    const p = job.progress;
    document.getElementById("job-progress-fill").style.width = `${p.percent}%`;
    let text = `${p.percent.toFixed(1)} %`;
    if (p.epochs) text += ` · epoch ${(p.epoch ?? 0).toFixed(2)} of ${p.epochs}`;
    if (p.iterations) text += ` · iteration ${p.iteration ?? 0} of ${p.iterations}`;
    if (p.eta_s !== null && p.eta_s !== undefined && !dl.finished(job.status)) text += ` · about ${Math.round(p.eta_s)} s left`;
    document.getElementById("job-progress-text").textContent = text;
    const m = job.metrics;
    const metrics = document.getElementById("job-metrics");
    metrics.textContent = "";
    for (const [label, value] of [["train loss", dl.number(m.train_loss)], ["train accuracy", dl.percent(m.train_accuracy)],
                                  ["val loss", dl.number(m.val_loss)], ["val accuracy", dl.percent(m.val_accuracy)]]) {
      metrics.append(dl.el("div", {}, dl.el("dt", { text: label }), dl.el("dd", { text: value })));
    }
    const list = document.getElementById("diagnostics");
    list.textContent = "";
    if (!job.diagnostics.length) list.append(dl.el("li", { class: "muted", "data-severity": "info", text: "None so far." }));
    for (const d of job.diagnostics) {
      const where = d.iteration !== null && d.iteration !== undefined ? ` (iteration ${d.iteration})` : "";
      list.append(dl.el("li", { "data-severity": d.severity, "data-code": d.code }, dl.el("code", { text: d.code }), d.message + where));
    }
    const error = document.getElementById("job-error");
    error.hidden = !job.error;
    if (job.error) error.textContent = `${job.error.code}: ${job.error.message}`;
    document.getElementById("btn-cancel").disabled = !dl.active(job.status);
    const download = document.getElementById("btn-download");
    download.setAttribute("aria-disabled", String(!(dl.finished(job.status) && job.progress.percent >= 100 && !job.error)));
  }

  async function poll() {
    const answer = await dl.api(`/jobs/${id}`).catch(() => null);
    if (answer && answer.ok) job = answer.body;
    if (answer && !answer.ok) {
      // deleted, or the sign-in is gone: say so, and stop asking
      dl.showProblem(document.getElementById("action-problem"), answer.body, answer.status);
      if (answer.status === 404 || answer.status === 401) return;
    }
    // the points written since the last look, page after page
    for (;;) {
      const page = await dl.api(`/jobs/${id}/metrics?since=${since}&limit=5000`).catch(() => null);
      if (!page || !page.ok) break;
      take(page.body.points);
      if (page.body.next_since !== null) since = page.body.next_since;
      if (!page.body.has_more) break;
    }
    if (iterations.x.length > 4 * Number(document.body.dataset.chartPoints)) await reload();
    showJob();
    draw();
    if (!dl.finished(job.status)) setTimeout(poll, REFRESH_MS);
  }

  async function reload() {
    for (const list of [iterations.x, iterations.loss, iterations.lr, epochs.x, epochs.train, epochs.val]) list.length = 0;
    const history = await charts.history(id).catch(() => ({ points: [], next_since: null }));
    take(history.points);
    if (history.next_since !== null) since = history.next_since;
  }

  async function act(path, label) {
    const box = document.getElementById("action-problem");
    const answer = await dl.api(path, { method: "POST" }).catch(() => null);
    if (!answer) { dl.showProblem(box, { title: `${label}: the service did not answer`, status: 0 }, 0); return null; }
    if (!answer.ok) { dl.showProblem(box, answer.body, answer.status); return null; }
    dl.showProblem(box, null);
    return answer.body;
  }

  document.getElementById("btn-cancel").addEventListener("click", async () => {
    const answer = await act(`/jobs/${id}/cancel`, "Cancel");
    if (answer) { job = answer; showJob(); }
  });
  document.getElementById("btn-rerun").addEventListener("click", async () => {
    const answer = await act(`/jobs/${id}/rerun`, "Rerun");
    if (answer) location.href = `/jobs/${answer.id}`;
  });

  showJob();
  reload().then(() => { draw(); poll(); });
})();
