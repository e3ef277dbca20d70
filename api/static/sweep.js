/* The page of one sweep (/sweeps/<id>): its leaderboard, every trial's curve of the sweep's
   metric per epoch on one chart, and the method's state (coarse_to_fine: its stages and their
   ranges).  Everything comes from the JSON API with the session cookie; it refreshes until the
   sweep has ended.  Text goes in as text (dl.el), never as HTML. */
"use strict";

(function () {
  const page = dl.data("sweep-page");
  const finishedSweep = new Set(page.finished_sweep_statuses);
  const curves = {};  // job id -> {x: [], y: [], since, done}
  // the best trials' curves only: more lines than this are unreadable, and a 1000-trial sweep
  // would ask for 1000 histories at every refresh
  const MAX_CURVES = 20;

  function row(trial, rank, bestId) {
    const job = trial.job_id
      ? dl.el("a", { href: `/jobs/${encodeURIComponent(trial.job_id)}`, text: trial.job_id.slice(0, 8) })
      : dl.el("span", { class: "muted", text: "no job" });
    return dl.el("tr", { class: trial.job_id && trial.job_id === bestId ? "best" : null, "data-job": trial.job_id },
      dl.el("td", { class: "num", text: rank }),
      dl.el("td", {}, job),
      dl.el("td", {}, dl.el("span", { class: "status", "data-status": trial.status || "", text: trial.status || "invalid" })),
      dl.el("td", {}, dl.el("code", { text: JSON.stringify(trial.params) })),
      dl.el("td", { class: "num", text: dl.number(trial.val_accuracy) }),
      dl.el("td", { class: "num", text: dl.number(trial.val_loss) }),
      dl.el("td", { class: "num", text: trial.epochs }),
      dl.el("td", { class: "muted reason", text: trial.reason || "" }));
  }

  function renderMethodState(state) {
    const box = document.getElementById("method-state");
    box.textContent = "";
    if (!state) return;
    box.append(dl.el("h2", { text: "Method" }));
    if (Array.isArray(state.stages)) {  // coarse_to_fine
      const table = dl.el("table", { class: "jobs", id: "stages" },
        dl.el("thead", {}, dl.el("tr", {}, ...["Stage", "Epochs", "Trials", "Started", "Ended", "Best", "Ranges"]
          .map((t) => dl.el("th", { text: t })))));
      const body = dl.el("tbody");
      for (const stage of state.stages) {
        body.append(dl.el("tr", {},
          ...[stage.stage, stage.epochs, stage.trials, stage.started, stage.ended].map((v) => dl.el("td", { class: "num", text: v })),
          dl.el("td", { class: "num", text: dl.number(stage.best) }),
          dl.el("td", {}, dl.el("code", { text: stage.ranges ? JSON.stringify(stage.ranges) : "(when the stage before has ended)" }))));
      }
      table.append(body);
      box.append(table);
    } else {
      box.append(dl.el("pre", { class: "spec", text: JSON.stringify(state, null, 2) }));
    }
  }

  async function loadCurve(jobId, metric, active) {
    const curve = curves[jobId] || (curves[jobId] = { x: [], y: [], since: 0, done: false });
    if (curve.done) return;
    for (;;) {
      const answer = await dl.api(`/jobs/${encodeURIComponent(jobId)}/metrics?kind=epoch&since=${curve.since}`);
      if (!answer.ok) throw answer;
      for (const p of answer.body.points) {
        const value = p.values ? p.values[metric] : undefined;
        if (typeof value === "number") { curve.x.push(p.epoch); curve.y.push(value); }
      }
      if (answer.body.next_since !== null && answer.body.next_since !== undefined) curve.since = answer.body.next_since;
      if (!answer.body.has_more) break;
    }
    curve.done = !active;  // an ended trial's curve is complete: never asked for again
  }

  function renderChart(sweep) {
    // best first, as the leaderboard: series 1 is the best trial, drawn thicker
    const drawn = sweep.leaderboard.filter((t) => t.job_id).slice(0, MAX_CURVES)
      .filter((t) => curves[t.job_id] && curves[t.job_id].x.length);
    const container = document.getElementById("chart");
    const ids = drawn.map((t) => t.job_id).join(" ");
    if (!drawn.length) { container.textContent = "No epoch has ended yet."; return; }
    const data = charts.join(drawn.map((t) => [curves[t.job_id].x, curves[t.job_id].y]));
    if (container.plot && container.dataset.series === ids) { container.plot.setData(data); return; }
    // uPlot itself rather than charts.line: a trial of one epoch is a single point, which only a
    // drawn point shows, and the ranking changes the series as trials end
    if (container.plot) container.plot.destroy();
    container.textContent = "";
    container.dataset.series = ids;
    const rank = new Map(sweep.leaderboard.map((t, i) => [t.job_id, i + 1]));
    container.plot = new uPlot({
      width: Math.max(300, container.clientWidth || 600), height: 260,
      scales: { x: { time: false } },
      axes: [{ label: "epoch" }, { label: sweep.metric, size: 60 }],
      series: [{ label: "epoch" }].concat(drawn.map((t, i) => ({
        label: `#${rank.get(t.job_id)} ${t.job_id.slice(0, 8)}`, stroke: PALETTE[i % PALETTE.length],
        width: i === 0 ? 3 : 1.5, spanGaps: true, points: { show: true, size: i === 0 ? 8 : 5 },
      }))),
      legend: { live: true },
    }, data, container);
  }

  async function refresh() {
    const answer = await dl.api(`/sweeps/${encodeURIComponent(page.id)}`);
    const errorBox = document.getElementById("error");
    if (!answer.ok) { dl.showProblem(errorBox, answer.body, answer.status); setTimeout(refresh, 5000); return; }
    dl.showProblem(errorBox, null, null);
    const sweep = answer.body;
    const status = document.getElementById("status");
    status.textContent = sweep.status;
    status.dataset.status = sweep.status;
    document.getElementById("method").textContent = sweep.method ? sweep.method.type : "";
    document.getElementById("metric").textContent = sweep.metric;
    const best = document.getElementById("best");
    best.textContent = sweep.best_job_id ? sweep.best_job_id.slice(0, 8) : "none yet";
    best.href = sweep.best_job_id ? `/jobs/${encodeURIComponent(sweep.best_job_id)}` : "#";
    document.getElementById("count").textContent = String(sweep.leaderboard.length);
    const body = document.querySelector("#leaderboard tbody");
    body.textContent = "";
    sweep.leaderboard.forEach((trial, i) => body.append(row(trial, i + 1, sweep.best_job_id)));
    renderMethodState(sweep.method_state);
    try {
      await Promise.all(sweep.leaderboard.filter((t) => t.job_id).slice(0, MAX_CURVES)
        .map((t) => loadCurve(t.job_id, sweep.metric, !t.status || dl.active(t.status))));
    } catch (failed) {
      dl.showProblem(errorBox, failed.body, failed.status);
    }
    renderChart(sweep);
    document.body.dataset.loaded = "1";
    if (!finishedSweep.has(sweep.status)) setTimeout(refresh, 2000);
  }

  refresh();
})();
