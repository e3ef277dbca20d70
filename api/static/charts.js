/* Line charts on uPlot (vendored, api/static/vendor/uplot): one helper for every page. */
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

const charts = {
  /** The metric history of a job, downsampled to the page's point budget per kind
   *  (GET /jobs/<id>/metrics?max_points=N keeps each bucket's min and max). */
  async history(jobId, since = -1) {
    const budget = Number(document.body.dataset.chartPoints);
    const answer = await dl.api(`/jobs/${encodeURIComponent(jobId)}/metrics?max_points=${budget}&since=${since}`);
    if (!answer.ok) throw answer;
    return answer.body;
  },

  /** A line chart in `container`: series = [{label, color?, scale?}], data = [xs, ys1, ys2...]. */
  line(container, xLabel, series, data, options = {}) {
    if (container.plot && container.plot.series.length === series.length + 1) {
      container.plot.setData(data);  // a growing curve: same chart, new points
      return container.plot;
    }
    container.textContent = "";
    const width = Math.max(300, container.clientWidth || 500);
    const opts = {
      width, height: 240,
      scales: { x: { time: false }, ...(options.scales || {}) },
      axes: [{ label: xLabel }, { label: options.yLabel || "", size: 60 }, ...(options.extraAxes || [])],
      series: [{ label: xLabel }].concat(series.map((s, i) => ({
        label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 1.5,
        spanGaps: true, scale: s.scale || "y", points: { show: false },
      }))),
      legend: { live: true },
    };
    const plot = new uPlot(opts, data, container);
    container.plot = plot;
    return plot;
  },

  /** Aligned columns [xs, ys...] of several series whose x values differ (uPlot.join). */
  join(tables) { return tables.length ? uPlot.join(tables) : [[]]; },
};
