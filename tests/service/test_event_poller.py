"""The per-process event poller: many streams, one poll; every stream complete and in order.

Real databases (SQLite and PostgreSQL, the ``settings`` fixture); events are written
the way the service writes them (``dljobs.jobstore``), from a writer thread, while the
streams read through ``api.events.stream_job_events``.
"""

from __future__ import annotations

import threading

from sqlalchemy import event

from api.event_poller import EventPoller
from api.events import stream_job_events
from dljobs import jobstore
from dljobs.client import parse_sse
from dljobs.db.models import Job, JobEvent
from dljobs.db.session import get_engine, session_factory
from dljobs.lifecycle import JobStatus

STREAMS = 20


def _job(factory, name: str) -> str:
    with factory() as session:
        job = jobstore.create_job(session, {"name": name}, {}, name)
        job.status = JobStatus.RUNNING.value
        session.commit()
        return job.id


def _write(factory, job_id: str, n: int, finish: bool = True) -> None:
    with factory() as session:
        for i in range(n):
            jobstore.append_event(session, job_id, "progress", {"iteration": i + 1})
            session.commit()
        if finish:
            session.get(Job, job_id).status = JobStatus.SUCCEEDED.value
            jobstore.append_event(session, job_id, "status", {"status": "succeeded"})
            session.commit()


def _read(poller, job_id: str, after: int = 0, out: list | None = None) -> list[dict]:
    chunks = stream_job_events(poller, job_id, after, heartbeat_s=0.05, max_s=60)
    events = list(parse_sse(iter("".join(chunks).split("\n"))))
    if out is not None:
        out.extend(events)
    return events


def _logged(factory, job_id: str) -> list[tuple[int, str]]:
    with factory() as session:
        return [(e.id, e.type) for e in session.query(JobEvent).filter_by(job_id=job_id).order_by(JobEvent.id)]


def test_many_streams_of_two_jobs_each_get_every_event_in_order_from_few_queries(settings):
    factory = session_factory(settings)
    jobs = [_job(factory, "a"), _job(factory, "b")]
    poller = EventPoller(factory, poll_s=0.02)
    statements = []
    engine = get_engine(settings.effective_database_url)

    def count(conn, cursor, statement, *args):
        if "job_events" in statement and threading.current_thread().name == "dljobs-event-poller":
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        results = [[] for _ in range(STREAMS)]
        readers = [threading.Thread(target=_read, args=(poller, jobs[i % 2]), kwargs={"out": results[i]})
                   for i in range(STREAMS)]
        for reader in readers:
            reader.start()
        writers = [threading.Thread(target=_write, args=(factory, job_id, 30)) for job_id in jobs]
        for writer in writers:
            writer.start()
        for thread in writers + readers:
            thread.join(timeout=60)
            assert not thread.is_alive()
    finally:
        event.remove(engine, "before_cursor_execute", count)

    for i, events in enumerate(results):
        job_id = jobs[i % 2]
        assert [(e["id"], e["event"]) for e in events] == _logged(factory, job_id)
        assert [e["data"]["iteration"] for e in events if e["event"] == "progress"] == list(range(1, 31))
        assert events[-1]["data"]["status"] == "succeeded"
    # The poller's one events query per poll served all twenty streams.
    assert 0 < len(statements) == poller.polls
    assert poller.streams() == 0  # every stream unsubscribed when it ended


def test_a_stream_resuming_behind_the_poller_catches_up_from_the_database(settings):
    factory = session_factory(settings)
    job_id = _job(factory, "resume")
    _write(factory, job_id, 10, finish=False)
    poller = EventPoller(factory, poll_s=0.01)
    first = poller.subscribe(job_id, 0)  # the feed starts here, and the poller reads ahead
    try:
        rows = []
        while len(rows) < 10:
            got, _ = first.read(1.0)
            rows += got
        cut = rows[3].id
        late = []
        reader = threading.Thread(target=_read, args=(poller, job_id, cut), kwargs={"out": late})
        reader.start()
        _write(factory, job_id, 5)
        reader.join(timeout=30)
        assert not reader.is_alive()
    finally:
        poller.unsubscribe(first)
    logged = _logged(factory, job_id)
    assert [(e["id"], e["event"]) for e in late] == [r for r in logged if r[0] > cut]


def test_a_slow_stream_past_its_pending_limit_reads_the_rest_from_the_database(settings):
    factory = session_factory(settings)
    job_id = _job(factory, "slow")
    poller = EventPoller(factory, poll_s=0.01, batch=7, max_pending=5)
    sub = poller.subscribe(job_id, 0)
    try:
        _write(factory, job_id, 40)
        # never read while the poller delivers: its pending rows overflow, more than once
        while not sub.feed.done:
            threading.Event().wait(0.02)
        got = []
        while True:
            rows, ended = sub.read(1.0)
            got += rows
            if ended:
                break
    finally:
        poller.unsubscribe(sub)
    assert [(r.id, r.type) for r in got] == _logged(factory, job_id)


def test_a_deleted_job_ends_its_streams(settings):
    factory = session_factory(settings)
    job_id = _job(factory, "gone")
    poller = EventPoller(factory, poll_s=0.01)
    events = []
    reader = threading.Thread(target=_read, args=(poller, job_id), kwargs={"out": events})
    reader.start()
    with factory() as session:  # as a running job's row never is by the API: the stream must still end
        session.delete(session.get(Job, job_id))
        session.commit()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert [e["data"]["status"] for e in events] in ([], ["queued"])  # read before, or not at all
