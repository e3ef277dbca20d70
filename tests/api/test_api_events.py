"""The SSE stream: every event of the job in order, resume after Last-Event-ID, end when done."""

from __future__ import annotations

from dljobs import jobstore
from dljobs.client import parse_sse

API = "/api/v1"


def _finished_job_with_events(session, n=5) -> str:
    job = jobstore.create_job(session, {"name": "sse"}, {}, "sse")
    for i in range(n):
        jobstore.append_event(session, job.id, "progress", {"iteration": i + 1})
    job.status = "succeeded"
    jobstore.append_event(session, job.id, "status", {"status": "succeeded"})
    session.commit()
    return job.id


def _read(client, job_id, **headers):
    resp = client.get(f"{API}/jobs/{job_id}/events", headers=headers)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    text = resp.get_data(as_text=True)  # returns only once the stream has ended
    return list(parse_sse(iter(text.split("\n")))), text


def test_stream_sends_every_event_in_order_and_ends(client, session):
    job_id = _finished_job_with_events(session)
    events, text = _read(client, job_id)
    assert [e["event"] for e in events] == ["status"] + ["progress"] * 5 + ["status"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e["data"]["iteration"] for e in events[1:6]] == [1, 2, 3, 4, 5]
    assert events[-1]["data"]["status"] == "succeeded"
    assert text.startswith("retry:")


def test_last_event_id_resumes_without_loss_or_repeat(client, session):
    job_id = _finished_job_with_events(session)
    events, _ = _read(client, job_id)
    cut = events[2]["id"]
    rest, _ = _read(client, job_id, **{"Last-Event-ID": str(cut)})
    assert [e["id"] for e in rest] == [e["id"] for e in events[3:]]
    query = client.get(f"{API}/jobs/{job_id}/events?last_event_id={cut}").get_data(as_text=True)
    assert [e["id"] for e in parse_sse(iter(query.split("\n")))] == [e["id"] for e in events[3:]]


def test_bad_last_event_id_is_a_problem(client, session, problem):
    job_id = _finished_job_with_events(session, n=1)
    resp = client.get(f"{API}/jobs/{job_id}/events", headers={"Last-Event-ID": "x"})
    problem(resp, 400, "Last-Event-ID")


def test_stream_of_a_running_job_follows_new_events_then_ends(app, session):
    """A stream opened on a running job gets events written after it opened."""
    import threading
    import time

    from api.context import session_factory
    from api.event_poller import EventPoller
    from api.events import stream_job_events

    job = jobstore.create_job(session, {"name": "live"}, {}, "live")
    job.status = "running"
    session.commit()
    job_id = job.id
    with app.app_context():
        factory = session_factory()

    def writer():
        with factory() as s:
            for i in range(3):
                time.sleep(0.05)
                jobstore.append_event(s, job_id, "metrics", {"step": i})
                s.commit()
            s.get(type(job), job_id).status = "cancelled"
            jobstore.append_event(s, job_id, "status", {"status": "cancelled"})
            s.commit()

    thread = threading.Thread(target=writer)
    thread.start()
    chunks = list(stream_job_events(EventPoller(factory, poll_s=0.01), job_id, 0,
                                    heartbeat_s=0.02, max_s=10))
    thread.join()
    events = list(parse_sse(iter("".join(chunks).split("\n"))))
    assert [e["event"] for e in events] == ["status", "metrics", "metrics", "metrics", "status"]
    assert [e["data"].get("step") for e in events[1:4]] == [0, 1, 2]
    assert any(c.startswith(": heartbeat") for c in chunks)


def test_the_stream_cap_comes_from_the_settings(tmp_path, monkeypatch):
    """DLJOBS_SSE_MAX_STREAMS (what `dljobs api --threads N` sets to N - 8) bounds open streams."""
    from api import create_app, events

    monkeypatch.setenv("DLJOBS_SSE_MAX_STREAMS", "2")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    with app.app_context():
        slots = events._stream_slots()
        assert slots.acquire(blocking=False) and slots.acquire(blocking=False)
        assert not slots.acquire(blocking=False)
