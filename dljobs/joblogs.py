"""A job's log lines: tagged with its id, and stored in the database for the API.

Workers run on other machines than the API, so what a worker logs while it runs a job
is written to ``job_logs`` (``GET /jobs/<id>/logs`` reads it, also after the worker is
gone).  :func:`capture` is where the task runs a job: it sets the job id every line
then carries (``record.job_id``, in the JSON lines of ``dljobs.logging_json`` too) and
adds a handler to the root logger that buffers the lines and writes them in batches,
from its own thread, every ``flush_s`` and when the job ends -- training never waits
for a log write.  A database that does not answer keeps the lines buffered (at most
``MAX_BUFFERED``; past that the oldest are dropped and a line says how many).

Stored is the message alone, never a traceback: a traceback names the worker's paths
and internals, which stay in the worker's own log.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

from sqlalchemy import insert

from dljobs.db.models import JobLog

log = logging.getLogger(__name__)

#: Seconds between two writes of a job's buffered lines.
FLUSH_S = 1.0
#: The longest the end of a job waits for its last lines to be written.
CLOSE_WAIT_S = 3.0
#: Lines kept while the database does not answer; older ones are dropped past it.
MAX_BUFFERED = 10_000
#: A longer message is cut here (a log line, not a data channel).
MAX_MESSAGE_CHARS = 4000

#: The job the current task runs (None outside one).
_current_job: ContextVar[str | None] = ContextVar("dljobs_job_id", default=None)
# The job this process runs: a prefork pool process runs one at a time, and the threads a
# job starts (its heartbeat) do not inherit the context variable.
_process_job: str | None = None


def current_job() -> str | None:
    """The id of the job whose lines this thread writes now (None outside a job)."""
    return _current_job.get() or _process_job


class JobIdFilter(logging.Filter):
    """Sets ``record.job_id`` (the job being run, or None) on every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = current_job()
        return True


class JobLogHandler(logging.Handler):
    """Buffers the records of one job; a thread writes them to ``job_logs`` in batches."""

    def __init__(self, factory, job_id: str, flush_s: float = FLUSH_S, level: int = logging.INFO):
        super().__init__(level)
        self.factory = factory
        self.job_id = job_id
        self.flush_s = flush_s
        self.buffer: deque[dict] = deque()
        self.dropped = 0
        self.buffer_lock = threading.Lock()  # not Handler.lock: emit holds that one
        self.write_lock = threading.Lock()  # one write at a time, in order
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"dljobs-joblogs-{job_id}", daemon=True)

    def start(self) -> JobLogHandler:
        self.thread.start()
        return self

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(__name__) or current_job() != self.job_id:
            return  # our own warnings would feed themselves; another job's are not ours
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break the job
            message = str(record.msg)
        row = {"job_id": self.job_id, "level": record.levelname[:16], "logger": record.name[:200],
               "message": message[:MAX_MESSAGE_CHARS],
               "created_at": datetime.fromtimestamp(record.created, UTC)}
        with self.buffer_lock:
            if len(self.buffer) >= MAX_BUFFERED:
                self.buffer.popleft()
                self.dropped += 1
            self.buffer.append(row)

    def _run(self) -> None:
        while not self.stopped.wait(self.flush_s):
            self.write()
        self.write()  # the last lines, once the job has ended

    def write(self) -> bool:
        """Write what is buffered; True when nothing is left (False: kept for the next try)."""
        with self.write_lock:
            with self.buffer_lock:
                rows = list(self.buffer)
                dropped, self.dropped = self.dropped, 0
            if dropped and rows:
                rows.insert(0, {**rows[0], "level": "WARNING", "logger": __name__,
                                "message": f"{dropped} earlier line(s) of this job were dropped: "
                                           "the database did not answer"})
            if not rows:
                return True
            try:
                with self.factory() as session:
                    session.execute(insert(JobLog), rows)
                    session.commit()
            except Exception:  # the database away: keep the lines for the next try
                with self.buffer_lock:
                    self.dropped += dropped
                log.warning("job %s: %d log line(s) not written yet", self.job_id, len(rows),
                            exc_info=True)
                return False
            with self.buffer_lock:
                for _ in range(len(rows) - (1 if dropped else 0)):
                    self.buffer.popleft()
            return True

    def close(self) -> None:
        """Write the last lines, waiting at most ``CLOSE_WAIT_S``: a database that does not
        answer must not hold the end of the task (the thread goes on trying on its own)."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=CLOSE_WAIT_S)
        else:
            self.write()
        super().close()


@contextlib.contextmanager
def capture(job_id: str, factory, flush_s: float = FLUSH_S) -> Iterator[JobLogHandler]:
    """Run the body as job ``job_id``: its log lines carry the id and are stored (see module)."""
    global _process_job
    handler = JobLogHandler(factory, job_id, flush_s).start()
    root = logging.getLogger()
    token = _current_job.set(job_id)
    previous, _process_job = _process_job, job_id
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        handler.close()
        _process_job = previous
        _current_job.reset(token)

