"""One poller per API process reads new events for every open event stream.

A stream (``api.events``) subscribes to its job with the last event id its client has.
One thread polls, every ``poll_s``, the statuses of every followed job and their new
events -- two queries whatever the number of streams -- and hands each stream the rows
it has not sent.  A stream waits on its own condition, holds no database connection
while it waits, and is woken only when there is something for it: a hundred viewers of
one job cost what one costs.

What a stream needs from before it subscribed (a ``Last-Event-ID`` older than what the
poller has read for the job), or after it fell behind (a slow client whose pending rows
passed ``max_pending``), it reads itself from the database in batches up to the point
the poller had reached, and then goes on from its pending rows: nothing is lost or sent
twice, and the order is the order of the event ids.

A job's feed is *done* once a poll read it finished (or deleted) and then read every
event after it: the final status event was committed with (or before) the status, so
it is in that read.  A stream ends when its feed is done and it has sent every row.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque

from dljobs import jobstore, queries
from dljobs.lifecycle import FINISHED

log = logging.getLogger("dljobs.api")

#: Rows one query reads at most (the poller reads again at once when a read was full).
BATCH = 500
#: Rows one stream may have waiting before it is made to catch up from the database.
MAX_PENDING = 5000
#: An idle poller (no stream open) ends its thread after this long; the next stream starts one.
IDLE_EXIT_S = 10.0
#: Pause after a failed poll (the database away): streams keep their heartbeats meanwhile.
ERROR_PAUSE_S = 1.0


class Feed:
    """One followed job: how far the poller has read its events, and its subscribers."""

    def __init__(self, job_id: str, seen: int):
        self.job_id = job_id
        self.seen = seen  # the highest event id the poller has read (or will read from)
        self.subscribers: set[Subscription] = set()
        self.done = False


class Subscription:
    """One open stream of one job: the rows it has not sent yet."""

    def __init__(self, poller: EventPoller, feed: Feed, after: int):
        self.poller = poller
        self.feed = feed
        self.after = after  # the last event id sent (or the client's Last-Event-ID)
        self.pending: deque[queries.EventRow] = deque()
        self.catch_up_to: int | None = None  # read (after, catch_up_to] from the database first
        self.wake = threading.Condition(poller.lock)
        self.closed = False

    def _catch_up_from_here(self) -> None:
        """Under the lock: rows up to what the poller has read come from the database."""
        self.pending.clear()
        self.catch_up_to = self.feed.seen if self.after < self.feed.seen else None

    def read(self, timeout: float) -> tuple[list[queries.EventRow], bool]:
        """The next rows to send (waits up to ``timeout`` for some), and whether the stream ends.

        Returns ``(rows, ended)``; ``rows`` may be empty after the timeout.
        """
        with self.poller.lock:
            upto = self.catch_up_to
        if upto is not None:
            rows = self._read_database(upto)
            if rows:
                return rows, False
        with self.poller.lock:
            if self.catch_up_to is not None:  # fell behind again while catching up
                return [], False
            if not self.pending and not self.feed.done:
                self.wake.wait(timeout)
            rows = [r for r in self.pending if r.id > self.after]
            self.pending.clear()
            if rows:
                self.after = rows[-1].id
            ended = not rows and self.feed.done and self.catch_up_to is None
        return rows, ended

    def _read_database(self, upto: int) -> list[queries.EventRow]:
        with self.poller.factory() as session:
            found = jobstore.events_since(session, self.feed.job_id, self.after, BATCH)
            rows = [queries.EventRow(e.id, e.job_id, e.type, e.data) for e in found if e.id <= upto]
        with self.poller.lock:
            if rows:
                self.after = rows[-1].id
            caught_up = len(found) < BATCH or len(rows) < len(found) or self.after >= upto
            if caught_up and self.catch_up_to == upto:
                self.catch_up_to = None
        return rows


class EventPoller:
    """The per-process poller of every open event stream (see the module)."""

    def __init__(self, factory, poll_s: float, batch: int = BATCH, max_pending: int = MAX_PENDING):
        self.factory = factory
        self.poll_s = poll_s
        self.batch = batch
        self.max_pending = max_pending
        self.lock = threading.Lock()
        self.feeds: dict[str, Feed] = {}
        self._kick = threading.Event()  # a new feed: poll now rather than at the next tick
        self._thread: threading.Thread | None = None
        self.polls = 0  # queries made, for tests and figures

    # streams ----------------------------------------------------------------------------

    def subscribe(self, job_id: str, after: int) -> Subscription:
        """Follow ``job_id`` from event id ``after``; the caller must :meth:`unsubscribe`."""
        with self.lock:
            feed = self.feeds.get(job_id)
            if feed is None:
                feed = self.feeds[job_id] = Feed(job_id, after)
                self._kick.set()
            sub = Subscription(self, feed, after)
            sub._catch_up_from_here()
            feed.subscribers.add(sub)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dljobs-event-poller",
                                                daemon=True)
                self._thread.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            if sub.closed:
                return
            sub.closed = True
            feed = sub.feed
            feed.subscribers.discard(sub)
            if not feed.subscribers and self.feeds.get(feed.job_id) is feed:
                del self.feeds[feed.job_id]

    def streams(self) -> int:
        """Streams subscribed now."""
        with self.lock:
            return sum(len(f.subscribers) for f in self.feeds.values())

    # the poller thread --------------------------------------------------------------------

    def _run(self) -> None:
        idle_since = None
        while True:
            with self.lock:
                if not self.feeds:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= IDLE_EXIT_S:
                        self._thread = None
                        return
                else:
                    idle_since = None
            try:
                full = self.poll_once()
            except Exception:  # the database away: streams wait and send heartbeats
                log.warning("event poller: a poll failed; trying again", exc_info=True)
                self._kick.wait(ERROR_PAUSE_S)
                full = False
            if not full:
                self._kick.wait(self.poll_s)
                self._kick.clear()

    def poll_once(self) -> bool:
        """One poll of every followed job; returns True when the read was full (read again)."""
        with self.lock:
            feeds = {job_id: feed for job_id, feed in self.feeds.items() if not feed.done}
            wanted = {job_id: feed.seen for job_id, feed in feeds.items()}
        if not wanted:
            return False
        with self.factory() as session:
            # Statuses before events: a finished job's last event is then in this read.
            statuses = queries.job_statuses(session, wanted)
            rows = queries.events_after(session, wanted, self.batch)
        self.polls += 1
        full = len(rows) == self.batch
        by_job: dict[str, list[queries.EventRow]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        with self.lock:
            for job_id, job_rows in by_job.items():
                feed = feeds[job_id]
                if self.feeds.get(job_id) is not feed:
                    continue  # every stream left (or a new feed began) since the read
                feed.seen = job_rows[-1].id
                for sub in feed.subscribers:
                    if len(sub.pending) + len(job_rows) > self.max_pending:
                        sub._catch_up_from_here()  # a slow client: it reads the database itself
                    else:
                        sub.pending.extend(job_rows)
                    sub.wake.notify()
            if not full:
                for job_id in wanted:
                    status = statuses.get(job_id)
                    feed = feeds[job_id]
                    if self.feeds.get(job_id) is feed and (status is None or status in FINISHED):
                        feed.done = True
                        for sub in feed.subscribers:
                            sub.wake.notify()
        return full


_pollers_lock = threading.Lock()


def poller_of(extensions: dict, factory, poll_s: float) -> EventPoller:
    """The app's poller in this process (made on first use; a forked process makes its own)."""
    key = "dljobs.event_poller"
    with _pollers_lock:
        found = extensions.get(key)
        if found is None or found[0] != os.getpid():
            found = extensions[key] = (os.getpid(), EventPoller(factory, poll_s))
        return found[1]
