"""bench/sections.py: a section runs in a subprocess, lands where it says in results.json, and one
over its time budget is interrupted (its cleanup runs) instead of holding up `make bench`."""

from __future__ import annotations

from bench import sections


def test_a_section_lands_at_its_place_and_one_over_budget_is_interrupted_after_cleaning_up(tmp_path):
    marker = tmp_path / "marker"
    quick = sections.Section("nap", "tests.bench.slow_section", ("service", "nap"), 60, "service",
                             kwargs={"marker": str(marker), "seconds": 0.1})  # fmt: skip
    figures, _ = sections.run(quick)
    assert figures == {"slept_s": 0.1} and marker.read_text() == "cleaned up"
    results = {"service": {"embedded": {}}}
    sections.place(results, quick, figures)
    assert results == {"service": {"embedded": {}, "nap": {"slept_s": 0.1}}}

    marker.unlink()
    slow = sections.Section("nap", "tests.bench.slow_section", ("service", "nap"), 5, "service",
                            kwargs={"marker": str(marker), "seconds": 120})  # fmt: skip
    figures, _ = sections.run(slow)
    assert figures == {"error": "over its budget of 5 s: interrupted"}
    assert marker.read_text() == "cleaned up"


def test_a_merged_section_adds_its_keys_and_a_failed_one_says_so():
    merged = sections.Section("dispatch", "tests.bench.slow_section", ("service",), 5, "service", True)
    results = {"service": {"submit_load": {"jobs": 1}}}
    sections.place(results, merged, {"redis": {"p50": 1}})
    assert results["service"] == {"submit_load": {"jobs": 1}, "redis": {"p50": 1}}
    sections.place(results, merged, {"error": "boom"})
    assert results["service"]["dispatch_error"] == "boom"
    figures, _ = sections.run(sections.Section("bad", "tests.bench.no_such_module", ("bad",), 60, "x"))
    assert "exited with 1" in figures["error"]


def test_the_sections_of_other_work_are_run_only_when_their_module_is_there():
    names = {s.name: s for s in sections.SECTIONS}
    assert sections.available(names["dispatch"]) and sections.available(names["throughput"])
    assert names["joblist"].where == ("service", "joblist") and names["sweeps"].where == ("sweeps",)
    assert not sections.available(sections.Section("x", "bench.no_such_module", ("x",), 1, "x"))
