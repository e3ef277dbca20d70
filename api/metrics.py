"""``GET /metrics``: the service in Prometheus' text format (prometheus-client).

Workers live on other machines, so what is said about jobs and the queue is read from
the database and the broker when Prometheus scrapes (a custom collector), never kept
in this process:

- ``dljobs_jobs{status}``: jobs in each status (every status, zero included);
- ``dljobs_queue_depth``: training messages the broker holds for ``DLJOBS_QUEUE_NAME``
  (Redis: the queue's lists, and messages delivered a moment ago; the embedded
  transport: its message files; RabbitMQ: a passive declare's message count), and
  ``dljobs_broker_up`` (0 when the broker did not answer: no depth then);
- ``dljobs_job_duration_seconds{status}``: a histogram of finished jobs' training time
  (``started_at`` to ``finished_at``), bucketed by the database;
- ``dljobs_training_iterations_per_second``: the summed training speed of the running
  jobs, and per running job ``dljobs_job_iterations{job_id}`` (its last written
  iteration, for ``rate()``) and ``dljobs_job_iterations_per_second{job_id}`` (the
  speed its worker measured: remaining iterations over its ETA);
- ``dljobs_api_request_duration_seconds{method,route}``: this process's request
  latency, labelled by the route's rule (``/api/v1/jobs/<job_id>``), not the raw path.
  With several gunicorn processes (``-w N``) each counts its own requests.

Auth: like every route but the probes, ``/metrics`` needs a bearer token, and an admin
one (``dljobs tokens create --name prometheus --admin``), since the figures cover every
owner's jobs; Prometheus sends it with ``authorization: {credentials: <token>}``.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.context import session_factory, settings
from api.documentation import documented, problem
from api.lookups import caller
from api.problems import Problem, error_item
from dljobs import queries
from dljobs.broker import broker_holdings

bp = Blueprint("metrics", __name__)
log = logging.getLogger("dljobs.api")

#: Bounds (seconds) of the job duration histogram: a seconds-long test job to a day-long run.
JOB_DURATION_BOUNDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: Bounds (seconds) of the request latency histogram.
REQUEST_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)

_REGISTRY = "dljobs.metrics_registry"
_LATENCY = "dljobs.request_latency"


class ServiceCollector:
    """The job and queue figures, read from the database and the broker at each scrape."""

    def __init__(self, app: Flask):
        self.app = app

    def describe(self):
        return []  # no scrape at registration: the figures exist only when asked

    def collect(self):
        with self.app.app_context():
            factory = session_factory()
            with factory() as session:
                by_status = queries.jobs_by_status(session)
                durations = queries.job_durations(session, JOB_DURATION_BOUNDS)
                live = queries.live_job_progress(session)
            yield _jobs_family(by_status)
            yield _duration_family(durations)
            yield from _speed_families(live)
            yield from _queue_families(settings())


def _jobs_family(by_status) -> GaugeMetricFamily:
    family = GaugeMetricFamily("dljobs_jobs", "Jobs in each status", labels=["status"])
    for status, count in by_status.items():
        family.add_metric([status.value], count)
    return family


def _duration_family(durations) -> HistogramMetricFamily:
    family = HistogramMetricFamily("dljobs_job_duration_seconds",
                                   "Training time of finished jobs (started_at to finished_at)",
                                   labels=["status"])
    for row in durations:
        buckets = [(str(bound), count) for bound, count in zip(JOB_DURATION_BOUNDS, row.at_most,
                                                              strict=True)]
        buckets.append(("+Inf", row.count))
        family.add_metric([row.status.value], buckets, row.total_s)
    return family


def iterations_per_second(progress: dict) -> float | None:
    """The speed a worker measured for its job: remaining iterations over its ETA (None if unknown)."""
    try:
        remaining = float(progress["iterations"]) - float(progress["iteration"])
        eta = float(progress["eta_s"])
    except (KeyError, TypeError, ValueError):
        return None
    if remaining <= 0 or eta <= 0:
        return None
    return remaining / eta


def _speed_families(live):
    total = GaugeMetricFamily("dljobs_training_iterations_per_second",
                              "Training iterations per second, summed over the running jobs")
    per_job = GaugeMetricFamily("dljobs_job_iterations_per_second",
                                "Training iterations per second of a running job (its worker's measure)",
                                labels=["job_id"])
    done = GaugeMetricFamily("dljobs_job_iterations", "The last iteration a running job wrote",
                             labels=["job_id"])
    speed_sum = 0.0
    for job_id, progress in live:
        if isinstance(progress.get("iteration"), int | float):
            done.add_metric([job_id], float(progress["iteration"]))
        speed = iterations_per_second(progress)
        if speed is not None:
            per_job.add_metric([job_id], speed)
            speed_sum += speed
    total.add_metric([], speed_sum)
    return total, per_job, done


def _queue_families(service_settings):
    up = GaugeMetricFamily("dljobs_broker_up", "1 when the broker answered this scrape")
    depth = GaugeMetricFamily("dljobs_queue_depth", "Training messages the broker holds for the queue",
                              labels=["queue"])
    try:
        holdings = broker_holdings(service_settings)
    except Exception as exc:  # noqa: BLE001 - the broker away is a figure (broker_up 0), not a failed scrape
        log.warning("metrics: the broker did not answer: %s", type(exc).__name__)
        up.add_metric([], 0)
        return (up,)
    up.add_metric([], 1)
    count = len(holdings.job_ids) if holdings.job_ids is not None else holdings.count
    if count is not None:
        depth.add_metric([service_settings.queue_name], count)
    return up, depth


# ---------------------------------------------------------------------------- request latency


def install(app: Flask) -> None:
    """This app's registry (the collector and the latency histogram) and the timing hooks."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(app))
    app.extensions[_REGISTRY] = registry
    app.extensions[_LATENCY] = Histogram(
        "dljobs_api_request_duration_seconds", "API request latency (to the response's first byte)",
        ["method", "route"], buckets=REQUEST_BOUNDS, registry=registry)
    # First of every before_request, so the Host and token checks are timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)
    app.after_request(_observe)


def _start_clock() -> None:
    g.dljobs_request_started = time.perf_counter()


#: Methods that get a label of their own; any other (a client may send any word) is ``OTHER``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _observe(response):
    started = g.get("dljobs_request_started")
    if started is not None:
        # Labels from the route table and a fixed set of methods, never from what the client
        # wrote: a scan of random paths or methods must not grow the series without bound.
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        method = request.method if request.method in METHODS else "OTHER"
        current_app.extensions[_LATENCY].labels(method, rule).observe(time.perf_counter() - started)
    return response


@bp.get("/metrics")
@documented("metrics", "The service's figures in Prometheus' text format (an admin token)",
            responses={"200": {"description": "Prometheus text format",
                               "content": {"text/plain": {"schema": {"type": "string"}}}},
                       "403": problem("The token is not an admin token")})
def metrics():
    if not caller().admin:
        raise Problem(403, "Admin token required",
                      "/metrics covers every owner's jobs: scrape it with an admin token "
                      "(dljobs tokens create --name prometheus --admin)",
                      [error_item("Authorization", "not an admin token")])
    try:
        text = generate_latest(current_app.extensions[_REGISTRY])
    except Exception:  # the collector reads only the database here (the broker is caught)
        log.warning("metrics: the database did not answer", exc_info=True)
        raise Problem(503, "Database unavailable", "the job figures come from the database, which "
                      "does not answer", [error_item("database", "not reachable")],
                      headers={"Retry-After": "5"}) from None
    return Response(text, content_type=CONTENT_TYPE_LATEST)
