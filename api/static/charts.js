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

  /** A line chart in `container`: series = [{label, color?, scale?}], data = [xs, ys1, ys2...].
   *  A null value is a gap (a NaN loss shows as one) unless options.spanGaps (joined curves). */
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
      // y ticks with as many decimals as their spacing needs: a learning rate that moved from
      // 0.02 to 0.01996 is not "0.02" four times
      axes: [{ label: xLabel },
             { label: options.yLabel || "", size: 70, values: charts.ticks },
             ...(options.extraAxes || [])],
      series: [{ label: xLabel }].concat(series.map((s, i) => ({
        label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 1.5,
        spanGaps: Boolean(options.spanGaps), scale: s.scale || "y", points: { show: false },
      }))),
      legend: { live: true },
    };
    const plot = new uPlot(opts, data, container);
    container.plot = plot;
    return plot;
  },

  /** Tick labels with the decimals their spacing needs (at most 12). */
  ticks(u, values) {
    const step = values.length > 1 ? Math.abs(values[1] - values[0]) : Math.abs(values[0] || 1);
    const decimals = Math.min(12, Math.max(0, Math.ceil(-Math.log10(step || 1) - 1e-6)));
    return values.map((v) => (v === null ? "" : v.toFixed(decimals)));
  },

  /** Aligned columns [xs, ys...] of several series whose x values differ (uPlot.join). */
  join(tables) { return tables.length ? uPlot.join(tables) : [[]]; },
};
