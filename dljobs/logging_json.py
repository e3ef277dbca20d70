"""JSON lines for the service's logs (``DLJOBS_LOG_JSON=1``): one object per line.

Each line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
``job_id`` of the job a worker runs (``dljobs.joblogs``) when there is one, and
``exc_info`` (the traceback) when the record has one.  The API (``api.create_app``) and
the workers (``workers.tasks``, once Celery has set its logging up) give every handler
of the root logger -- and gunicorn's own loggers -- this formatter.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from dljobs.joblogs import JobIdFilter, current_job

#: gunicorn's loggers, which do not propagate to the root logger.
GUNICORN_LOGGERS = ("gunicorn.error", "gunicorn.access")


class JsonLineFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or current_job()
        if job_id:
            out["job_id"] = job_id
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def use_json_lines(logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
    """Every handler of ``logger`` (the root logger by default) and gunicorn's writes JSON lines.

    A root logger with no handler gets one on stderr.  Calling it again changes nothing.
    """
    root = logger or logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > level:
            root.setLevel(level)
    handlers = list(root.handlers)
    for name in GUNICORN_LOGGERS:
        handlers += logging.getLogger(name).handlers
    for handler in handlers:
        if not isinstance(handler.formatter, JsonLineFormatter):
            handler.setFormatter(JsonLineFormatter())
        if not any(isinstance(f, JobIdFilter) for f in handler.filters):
            handler.addFilter(JobIdFilter())
