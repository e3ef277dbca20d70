"""A typed Python client for the dljobs HTTP API, over ``requests``.

    from dljobs.client import Client

    api = Client("http://127.0.0.1:8000")
    job = api.submit(spec)                      # validated by the server, or ApiError
    job = api.wait(job["id"], on_progress=print)
    print(job["metrics"]["val_accuracy"])
    api.predict(job["id"], x)                   # {"predictions": [...], "probabilities": ...}

Every error answer of the API (problem+json) is raised as :class:`ApiError`, whose
``errors`` list names each field at fault.

Every request carries ``Authorization: Bearer <token>``: the ``token`` given, else
``DLJOBS_TOKEN``, else the file ``dljobs up`` writes, ``<DLJOBS_DATA_DIR>/token``
(``~/.local/share/dljobs/token`` by default).  A 401 is :class:`Unauthorized`, which
says where the client looked.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
import requests

from dljobs.lifecycle import FINISHED, STATUSES, SWEEP_FINISHED, StopReason


class Progress(TypedDict):
    epoch: float | None
    epochs: int | None
    iteration: int | None
    iterations: int | None
    percent: float
    eta_s: float | None


class Metrics(TypedDict):
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None


class Job(TypedDict):
    """A job answer (see ``GET /api/v1/openapi.json`` for the full schema)."""

    id: str
    name: str | None
    status: Literal[tuple(s.value for s in STATUSES)]  # a dljobs.lifecycle.JobStatus
    attempt: int
    worker: dict | None
    queue_position: int | None
    progress: Progress
    metrics: Metrics
    diagnostics: list[dict]
    error: dict | None
    summary: dict | None
    spec: dict  # the request that submits this job again: ``submit(job["spec"])``
    rerun_of: str | None  # the id of the job this one was rerun from
    stop_reason: Literal[tuple(r.value for r in StopReason)] | None  # a dljobs.lifecycle.StopReason
    stopped_epoch: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class MetricPoint(TypedDict):
    step: int
    kind: Literal["iteration", "epoch"]
    iteration: int | None
    epoch: float | None
    values: dict[str, Any]
    created_at: str | None


class Dataset(TypedDict):
    id: str
    name: str | None
    sample_shape: list[int]
    num_classes: int
    n_samples: int
    size_bytes: int
    sha256: str
    created_at: str | None


class Prediction(TypedDict):
    predictions: list[int]
    probabilities: list[list[float]]


class Event(TypedDict):
    """One Server-Sent Event of a job's stream."""

    id: int | None
    event: str
    data: Any


class ApiError(Exception):
    """An error answer of the API: ``status``, ``title``, ``detail`` and ``errors``."""

    def __init__(self, status: int, problem: dict):
        self.status = status
        self.problem = problem
        self.title = problem.get("title", "")
        self.detail = problem.get("detail", "")
        self.errors: list[dict] = list(problem.get("errors") or [])
        fields = ", ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors)
        super().__init__(f"{status} {self.title}: {fields or self.detail}")

    @property
    def fields(self) -> list[str]:
        return [e.get("field", "") for e in self.errors]


class Unauthorized(ApiError):
    """A 401: the token is missing, unknown or revoked; the message says where it was looked for."""

    def __init__(self, status: int, problem: dict, looked: str):
        super().__init__(status, problem)
        self.looked = looked
        self.args = (f"{self.args[0]} (token looked for in: {looked})",)


#: The data directory ``dljobs up`` uses when ``DLJOBS_DATA_DIR`` is not set.
DEFAULT_DATA_DIR = Path("~/.local/share/dljobs")


def token_file(data_dir: str | Path | None = None) -> Path:
    """Where ``dljobs up`` writes its admin token: ``<data_dir>/token``."""
    base = data_dir or os.environ.get("DLJOBS_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(base).expanduser() / "token"


def find_token(token: str | None = None) -> tuple[str | None, str]:
    """``(token, where it came from)``: the argument, ``DLJOBS_TOKEN``, then the token file."""
    if token:
        return token, "the token= argument"
    if os.environ.get("DLJOBS_TOKEN"):
        return os.environ["DLJOBS_TOKEN"].strip(), "DLJOBS_TOKEN"
    path = token_file()
    try:
        found = path.read_text().strip()
    except OSError:
        return None, f"token=, DLJOBS_TOKEN and {path} (no such file)"
    return (found or None), str(path)


class JobTimeout(TimeoutError):
    """``wait`` gave up before the job finished; ``job`` is its last answer."""

    def __init__(self, job: Job, timeout: float):
        self.job = job
        super().__init__(f"job {job['id']} still {job['status']} after {timeout:g} s")


#: The comment line the server sends last, once the job is finished and every event sent.
END_OF_STREAM = ": end of stream"


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Events from the lines of a ``text/event-stream`` (comments and ``retry:`` skipped)."""
    event_id, event_type, data = None, "message", []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = text
                yield Event(id=event_id, event=event_type, data=payload)
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "id":
            event_id = int(value) if value.isdigit() else None
        elif key == "event":
            event_type = value
        elif key == "data":
            data.append(value)


class Client:
    """The dljobs API at ``base_url`` (e.g. ``http://127.0.0.1:8000``).

    Inputs:
    - base_url: scheme, host and port; ``/api/v1`` is added.
    - timeout: seconds for each request (event streams excepted).
    - session: a ``requests.Session`` to reuse (one is made otherwise).
    - token: the bearer token (else ``DLJOBS_TOKEN``, else ``<DLJOBS_DATA_DIR>/token``).
    """

    def __init__(self, base_url: str, timeout: float = 30.0,
                 session: requests.Session | None = None, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.api_url = self.base_url + "/api/v1"
        self.timeout = timeout
        self.http = session or requests.Session()
        self.token, self.token_source = find_token(token)
        if self.token:
            self.http.headers["Authorization"] = f"Bearer {self.token}"

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, *, root: bool = False, expect_json=True,
                 **kwargs):
        url = (self.base_url if root else self.api_url) + path
        kwargs.setdefault("timeout", self.timeout)
        resp = self.http.request(method, url, **kwargs)
        if resp.status_code >= 400:
            try:
                problem = resp.json()
            except ValueError:
                problem = {"title": resp.reason or "error", "detail": resp.text[:500]}
            problem = problem if isinstance(problem, dict) else {}
            if resp.status_code == 401:
                raise Unauthorized(401, problem, self.token_source)
            raise ApiError(resp.status_code, problem)
        if not expect_json:
            return resp
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    # ------------------------------------------------------------------ jobs

    def submit(self, spec: dict, idempotency_key: str | None = None) -> Job:
        """Submit a job spec; the server validates it fully (ApiError 422 names the fields)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/jobs", json=spec, headers=headers)

    def get(self, job_id: str) -> Job:
        return self._request("GET", f"/jobs/{job_id}")

    def list(self, status: str | list[str] | None = None, limit: int | None = None,
             cursor: str | None = None, name: str | None = None) -> dict:
        """One page: ``{"jobs": [...], "next_cursor": str | None}``, newest first.

        ``name`` keeps the jobs whose name starts with it (case-sensitive).
        """
        params: dict[str, Any] = {}
        if status:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if name:
            params["name"] = name
        if limit:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/jobs", params=params)

    def iter_jobs(self, status: str | list[str] | None = None, page_size: int = 100,
                  name: str | None = None) -> Iterator[Job]:
        """Every job (with that status and name prefix), newest first, following the cursor."""
        cursor = None
        while True:
            page = self.list(status=status, limit=page_size, cursor=cursor, name=name)
            yield from page["jobs"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        return self._request("POST", f"/jobs/{job_id}/cancel")

    def rerun(self, job_id: str) -> Job:
        return self._request("POST", f"/jobs/{job_id}/rerun")

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 0.5,
             on_progress: Callable[[Job], None] | None = None) -> Job:
        """Poll until the job is finished; ``on_progress(job)`` is called on every change.

        Returns: the finished job (whatever its status). Raises JobTimeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            job = self.get(job_id)
            seen = (job["status"], job["progress"].get("iteration"), job["progress"].get("epoch"))
            if on_progress is not None and seen != last:
                on_progress(job)
            last = seen
            if job["status"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(job, timeout)
            time.sleep(poll_s)

    def metrics(self, job_id: str, since: int | None = None, kind: str | None = None,
                page_size: int = 1000) -> list[MetricPoint]:
        """The metric history after step ``since`` (all of it by default), every page."""
        points: list[MetricPoint] = []
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if since is not None:
                params["since"] = since
            if kind:
                params["kind"] = kind
            page = self._request("GET", f"/jobs/{job_id}/metrics", params=params)
            points += page["points"]
            since = page.get("next_since")
            if not page.get("has_more"):
                return points

    def events(self, job_id: str, last_event_id: int | None = None,
               read_timeout: float = 60.0) -> Iterator[Event]:
        """Server-Sent Events of the job until its stream ends (the job finished).

        Reconnects from the last event id seen after a dropped connection, and after a
        stream closed before the server's end-of-stream comment (a proxy's or the server's
        time limit), so every event is delivered once.
        """
        ended = False

        def watch(lines: Iterator[str]) -> Iterator[str]:
            nonlocal ended
            for line in lines:
                if line == END_OF_STREAM:
                    ended = True
                yield line

        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            try:
                resp = self._request("GET", f"/jobs/{job_id}/events", expect_json=False,
                                     headers=headers, stream=True,
                                     timeout=(self.timeout, read_timeout))
                with resp:
                    for event in parse_sse(watch(resp.iter_lines(decode_unicode=True))):
                        if event["id"] is not None:
                            last_event_id = event["id"]
                        yield event
                if ended:
                    return
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                pause = 0.5
            except ApiError as exc:
                if exc.status != 503:  # 503: the server's streams are all taken; retry
                    raise
                pause = 2.0
            else:
                pause = 0.5
            time.sleep(pause)

    # ------------------------------------------------------------------ models

    def download_model(self, job_id: str, path: str | Path | None = None) -> bytes:
        """The trained model's ``.npz`` bytes (also written to ``path`` if given)."""
        data = self._request("GET", f"/jobs/{job_id}/model", expect_json=False).content
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def predict(self, job_id: str, inputs) -> Prediction:
        """Predictions for samples shaped like the dataset's (nested lists or an array)."""

        try:
            array = np.asarray(inputs)
        except ValueError:  # ragged lists: the server names what is wrong with them
            return self._request("POST", f"/jobs/{job_id}/predict", json={"inputs": inputs})
        if array.dtype.kind in "biuf" and array.size > 4096:
            buf = io.BytesIO()
            np.savez(buf, inputs=array)
            files = {"file": ("inputs.npz", buf.getvalue(), "application/octet-stream")}
            return self._request("POST", f"/jobs/{job_id}/predict", files=files)
        payload = array.tolist() if hasattr(array, "tolist") else inputs
        return self._request("POST", f"/jobs/{job_id}/predict", json={"inputs": payload})

    # ------------------------------------------------------------------ datasets

    def upload_dataset(self, source: str | Path | bytes, name: str | None = None) -> Dataset:
        """Upload an ``.npz`` (a path or its bytes); answers its id, shape and classes.

        Bytes uploaded before answer the dataset already stored (same id, its first name).
        """
        if isinstance(source, (bytes, bytearray)):
            data, filename = bytes(source), (name or "dataset") + ".npz"
        else:
            path = Path(source)
            data, filename = path.read_bytes(), path.name
        form = {"name": name} if name else {}
        files = {"file": (filename, data, "application/octet-stream")}
        return self._request("POST", "/datasets", files=files, data=form)

    def datasets(self) -> list[Dataset]:
        return self._request("GET", "/datasets")["datasets"]

    def dataset(self, dataset_id: str) -> Dataset:
        return self._request("GET", f"/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset; ApiError 409 (naming the jobs) while an active job trains on it."""
        self._request("DELETE", f"/datasets/{dataset_id}")

    # ------------------------------------------------------------------ service

    def plugins(self) -> dict:
        return self._request("GET", "/plugins")

    def openapi(self) -> dict:
        return self._request("GET", "/openapi.json")

    def healthy(self) -> bool:
        try:
            self._request("GET", "/healthz", root=True)
            return True
        except (ApiError, requests.RequestException):
            return False

    def ready(self) -> dict:
        """The ``/readyz`` document (raises ApiError 503 when not ready)."""
        return self._request("GET", "/readyz", root=True)

    # ------------------------------------------------------------------ sweeps

    def submit_sweep(self, sweep: dict) -> dict:
        """Submit a sweep (``docs/sweeps.md``); ApiError 422 names every field at fault."""
        return self._request("POST", "/sweeps", json=sweep)

    def sweep(self, sweep_id: str) -> dict:
        """One sweep with its leaderboard, best first."""
        return self._request("GET", f"/sweeps/{sweep_id}")

    def sweeps(self, limit: int | None = None) -> list[dict]:
        """The sweeps this token sees, newest first."""
        params = {"limit": limit} if limit else {}
        return self._request("GET", "/sweeps", params=params)["sweeps"]

    def cancel_sweep(self, sweep_id: str) -> dict:
        """Cancel a sweep: its queued trials never run, running ones stop cooperatively."""
        return self._request("POST", f"/sweeps/{sweep_id}/cancel")

    def wait_sweep(self, sweep_id: str, timeout: float | None = None, poll_s: float = 0.5,
                   on_change: Callable[[dict], None] | None = None) -> dict:
        """Poll until the sweep is finished; ``on_change(sweep)`` on every change of its leaderboard.

        Returns: the finished sweep (whatever its status). Raises TimeoutError.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            sweep = self.sweep(sweep_id)
            seen = (sweep["status"], json.dumps(sweep["leaderboard"], sort_keys=True))
            if on_change is not None and seen != last:
                on_change(sweep)
            last = seen
            if sweep["status"] in SWEEP_FINISHED:
                return sweep
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {sweep_id} still {sweep['status']} after {timeout:g} s")
            time.sleep(poll_s)
