/* The compare view: each job's loss and validation accuracy, overlaid (uPlot.join aligns
   the iterations of jobs that logged different ones). */
"use strict";

(async () => {
  const jobs = dl.data("compare-data");
  const histories = await Promise.all(jobs.map((job) => charts.history(job.id).catch(() => ({ points: [] }))));
  const loss = [], accuracy = [];
  histories.forEach((history) => {
    const it = history.points.filter((p) => p.kind === "iteration");
    const ep = history.points.filter((p) => p.kind === "epoch");
    loss.push([it.map((p) => p.iteration), it.map((p) => p.values.loss ?? null)]);
    accuracy.push([ep.map((p) => p.epoch), ep.map((p) => p.values.val_accuracy ?? null)]);
  });
  const labels = jobs.map((job) => ({ label: job.name ? `${job.name} (${job.id.slice(0, 6)})` : job.id }));
  charts.line(document.getElementById("chart-loss"), "iteration", labels, charts.join(loss), { yLabel: "loss", spanGaps: true });
  charts.line(document.getElementById("chart-accuracy"), "epoch", labels, charts.join(accuracy), { yLabel: "val accuracy", spanGaps: true });
  document.body.dataset.chartsDrawn = "true";
})();
