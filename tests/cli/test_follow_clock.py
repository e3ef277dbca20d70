"""The follow command's ETA comes from measured step times, never from a burst of replayed events.

A narrow unit test of :class:`dljobs.commands.follow.StepClock` (times are given, not slept).
"""

from __future__ import annotations

import pytest

from dljobs.commands.follow import MIN_SPAN_S, ProgressView, StepClock, diagnostic_line, duration


def test_no_rate_until_the_observations_span_real_time():
    clock = StepClock()
    clock.observe(10, at=100.0)
    assert clock.rate is None and clock.eta_s(100, now=100.0) is None
    clock.observe(20, at=100.0 + MIN_SPAN_S / 2)
    assert clock.rate is None


def test_the_rate_is_iterations_per_second_of_arrival_time():
    clock = StepClock()
    for second in range(6):
        clock.observe(50 * second, at=10.0 + second)
    assert clock.rate == pytest.approx(50.0)
    assert clock.eta_s(1000, now=15.0) == pytest.approx((1000 - 250) / 50.0)
    assert clock.eta_s(1000, now=16.0) == pytest.approx((1000 - 250) / 50.0 - 1.0)


def test_a_replayed_burst_counts_as_one_moment():
    """Connecting late replays 400 iterations in a few ms: that is not 100,000 steps a second."""
    clock = StepClock()
    for i in range(0, 401, 40):
        clock.observe(i, at=50.0 + i * 1e-5)
    assert len(clock.samples) == 1 and clock.samples[0][1] == 400
    clock.observe(410, at=51.0)
    assert clock.rate == pytest.approx(10.0, rel=0.01)


def test_the_window_forgets_a_slow_start():
    clock = StepClock(window_s=5.0)
    clock.observe(0, at=0.0)
    clock.observe(1, at=10.0)  # ten seconds of start-up for the first step
    for second in range(11, 30):
        clock.observe(1 + 100 * (second - 10), at=float(second))
    assert clock.rate == pytest.approx(100.0)


def test_a_rewind_starts_the_measure_afresh():
    clock = StepClock()
    clock.observe(100, at=0.0)
    clock.observe(200, at=1.0)
    clock.observe(50, at=2.0)  # a resumed attempt went back to its checkpoint
    assert list(clock.samples) == [(2.0, 50)]


def test_the_view_prints_diagnostics_and_status_changes_as_they_come(tmp_path):
    out = (tmp_path / "err.txt").open("w+")
    view = ProgressView("abc", out=out)
    view.on_event({"event": "status", "data": {"status": "running", "attempt": 1,
                                               "worker": {"host": "h", "pid": 7}}}, now=0.0)
    view.on_event({"event": "progress", "data": {"iteration": 5, "iterations": 50, "epoch": 0.5,
                                                 "epochs": 5, "percent": 10.0, "eta_s": 900.0}}, now=1.0)
    view.on_event({"event": "diagnostic", "data": {"code": "nan_loss", "severity": "error",
                                                   "iteration": 6, "epoch": 0.6,
                                                   "message": "loss became NaN"}}, now=1.5)
    view.on_event({"event": "progress", "data": {"iteration": 25, "iterations": 50, "epoch": 2.5,
                                                 "epochs": 5, "percent": 50.0, "eta_s": 900.0}}, now=3.0)
    assert view.clock.rate == pytest.approx(10.0)
    assert "eta 2s" in view.postfix(now=3.0)  # 25 steps left at 10 a second, not the server's 900 s
    view.finish({"status": "failed"})
    out.seek(0)
    text = out.read()
    assert "job abc running on h (pid 7)" in text
    assert "error nan_loss at iteration 6, epoch 0.6: loss became NaN" in text


def test_durations_read_shortly():
    assert [duration(s) for s in (None, 0.4, 7, 125, 3 * 3600 + 120)] == ["?", "0s", "7s", "2m05s", "3h02m"]
    assert diagnostic_line({"code": "x", "severity": "warning", "message": "m"}) == "warning x: m"
