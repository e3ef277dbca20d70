"""`make bench`'s harness end to end on a tiny configuration, and the parts it is made of.

No figure is judged here (speed lives in bench/): these tests check that the harness
runs, that bench/results.json has the schema docs/performance.md gives, that each PyTorch
twin starts from its dlcore network's weights, that the FLOP count is the documented
formula, and that the targets are checked the way bench/targets.py says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import networks, targets, timing

ROOT = Path(__file__).resolve().parents[2]

FIGURE_KEYS = {"dlcore_ms", "dlcore_ms_best", "torch_ms", "torch_ms_best", "ratio", "gflops", "pct_peak",
               "dlcore_peak_mb", "torch_peak_mb"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.torch
def test_a_quick_run_writes_results_json_with_the_schema_of_the_issue(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-service", "--no-sweeps", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"machine", "versions", "blas", "sgemm_gflops", "networks", "targets", "wall_s"} <= set(results)
    cores = str(results["machine"]["cores"])
    assert results["machine"]["cpu"] and int(cores) >= 1
    assert {"python", "numpy", "torch", "dlcore"} <= set(results["versions"])
    assert any(b["internal_api"] in ("openblas", "mkl", "blis") for b in results["blas"]), results["blas"]
    assert set(results["sgemm_gflops"]) == {"1", cores} and all(v > 0 for v in results["sgemm_gflops"].values())
    assert list(results["networks"]) == ["mlp"]
    mlp = results["networks"]["mlp"]
    assert set(mlp["threads"]) == {"1", cores}
    for figures in mlp["threads"].values():
        assert FIGURE_KEYS <= set(figures), figures
        assert 0 < figures["dlcore_ms_best"] <= figures["dlcore_ms"]
        assert 0 < figures["torch_ms_best"] <= figures["torch_ms"]
        assert figures["ratio"] == pytest.approx(figures["dlcore_ms"] / figures["torch_ms"], rel=1e-2)
        assert figures["dlcore_peak_mb"] > 0 and figures["torch_peak_mb"] > 0
    rows = {row["target"]: row for row in results["targets"]}
    assert rows["mlp dlcore/torch, 1 thread"]["status"] in ("met", "stretch", "MISSED")
    assert rows["resnet_tiny dlcore/torch, 1 thread"]["status"] == "not measured"
    # the table and the targets reach stdout, and bench.report renders the file for the docs
    assert "| mlp | 1 |" in done.stdout and "targets (issue 12)" in done.stdout
    from bench import report

    text = report.render(results)
    assert "| mlp | 1 |" in text and f"({cores} cores)" in text and "| mlp dlcore/torch, 1 thread |" in text


@pytest.mark.torch
def test_every_network_has_a_twin_with_the_same_initial_weights():
    for network in networks.all_networks():
        setup = networks.setup_dlcore(network)
        module, reason = networks.torch_module(network, setup.net, setup.x)
        assert module is not None, f"{network.name}: {reason}"
        dlcore_params = sum(a.size for a in setup.net.params.values())
        assert dlcore_params == sum(p.numel() for p in module.parameters()), network.name


@pytest.mark.torch
def test_a_twin_step_starts_from_the_same_loss_and_learns_the_same_way():
    """One training step each from the same weights: the same loss before, close after."""
    import torch

    from dlcore.layout import to_internal
    from dlcore.losses.softmax import SoftmaxLoss

    (network,) = networks.select(["cnn"])
    setup = networks.setup_dlcore(network)
    module, _ = networks.torch_module(network, setup.net, setup.x)
    xt, yt = torch.from_numpy(setup.x), torch.from_numpy(setup.y.astype(np.int64))

    def losses():
        ours, _ = SoftmaxLoss().forward(setup.net.forward(to_internal(setup.x), training=False), setup.y)
        module.eval()
        with torch.no_grad():
            theirs = float(torch.nn.functional.cross_entropy(module(xt), yt))
        return float(ours), theirs

    before = losses()
    assert before[0] == pytest.approx(before[1], rel=1e-4)
    setup.step()
    networks.torch_step(module, setup.x, setup.y)()
    after = losses()
    assert after[0] != pytest.approx(before[0], rel=1e-6)  # a step was taken
    assert after[0] == pytest.approx(after[1], rel=1e-3)


def test_gflop_per_step_is_three_forwards_less_the_first_layers_input_gradient():
    (network,) = networks.select(["cnn"])
    net = networks.build_dlcore(network)
    # conv 3->32 on 32x32, conv 32->64 on 16x16, affine 4096->10; batch 64; 2 FLOPs a multiply-add
    conv1, conv2, affine = (2 * 64 * n for n in (27 * 32 * 32 * 32, 288 * 64 * 16 * 16, 4096 * 10))
    assert networks.gflop_per_step(net, 64) == pytest.approx((3 * (conv1 + conv2 + affine) - conv1) / 1e9)


def test_the_reference_networks_are_the_five_of_the_issue_and_every_architecture_follows():
    from dlcore.registry import default_registry

    names = [n.name for n in networks.all_networks()]
    assert names[:5] == ["mlp", "mlp_b8", "cnn", "cnn_bn_drop", "resnet_tiny"]
    assert names[5:] == [f"arch:{a}" for a in default_registry().names("architectures")]
    assert [n.name for n in networks.select(["cnn", "arch"])] == ["cnn", *names[5:]]
    with pytest.raises(SystemExit, match="unknown network"):
        networks.select(["nope"])


def test_the_rounds_alternate_sides_and_report_median_and_best():
    calls = []
    result = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"), "c": None},
                                rounds=3, round_s=0.0)  # fmt: skip
    assert set(result) == {"a", "b"}
    assert calls[-6:] == ["a", "b", "b", "a", "a", "b"]  # one step per block after warming up
    for side in result.values():
        assert len(side["rounds_ms"]) == 3 and side["best_ms"] <= side["median_ms"]


def _results(ratio_1: float, ratio_2: float) -> dict:
    figures = {"1": {"ratio": ratio_1, "dlcore_ms": 10.0, "dlcore_peak_mb": 30.0, "torch_peak_mb": 10.0},
               "2": {"ratio": ratio_2, "dlcore_ms": 6.0, "dlcore_peak_mb": 12.0, "torch_peak_mb": 10.0}}
    return {"machine": {"cores": 2}, "networks": {"cnn": {"threads": figures}},
            "service": {"throughput": {"1": {"jobs_per_minute": 50.0}, "2": {"jobs_per_minute": 95.0}}}}  # fmt: skip


def test_targets_say_met_stretch_or_missed_and_by_how_much():
    rows = {r["target"]: r for r in targets.check(_results(0.80, 1.21))}
    one, many = rows["cnn dlcore/torch, 1 thread"], rows["cnn dlcore/torch, all cores"]
    assert (one["status"], one["by"]) == ("met", round(100 * (0.80 / 0.85 - 1), 1))
    assert (many["status"], many["by"]) == ("MISSED", 10.0)
    assert rows["cnn dlcore/torch, 1 thread"]["stretch"] == 0.7
    stretched = {r["target"]: r["status"] for r in targets.check(_results(0.6, 0.9))}
    assert stretched["cnn dlcore/torch, 1 thread"] == stretched["cnn dlcore/torch, all cores"] == "stretch"
    assert rows["cnn dlcore all cores / 1 thread"]["value"] == 0.6
    assert rows["cnn dlcore all cores / 1 thread"]["status"] == "met"
    assert rows["cnn peak memory dlcore/torch, 1 thread"]["status"] == "MISSED"
    assert rows["cnn peak memory dlcore/torch, all cores"]["status"] == "met"
    speedup = rows["2 workers / 1 worker, jobs per minute"]
    assert (speedup["value"], speedup["status"]) == (1.9, "met")
    assert rows["mlp dlcore/torch, 1 thread"]["status"] == "not measured"
    text = targets.table(targets.check(_results(0.80, 1.21)))
    assert "missed by +10.0%" in text and "not measured" in text


def test_the_profile_has_a_row_per_layer_and_the_step():
    from bench import profile

    (network,) = networks.select(["resnet_tiny"])
    rows = profile.profile(network, 1, steps=1)
    layers = [r["layer"] for r in rows]
    assert layers[:4] == ["0", "1", "2", "3"] and "3.0" in layers and "3.4" in layers
    assert layers[-3:] == ["loss", "update", "step"]
    assert all(r["forward_ms"] >= 0 for r in rows)
    text = profile.markdown(network, {1: rows})
    assert "| 3 | residual (own) |" in text and "| step | whole step |" in text


def test_docs_performance_names_every_flag_every_section_and_every_figure():
    from bench import __main__ as harness
    from bench import sections

    text = (ROOT / "docs" / "performance.md").read_text()
    parser_flags = {o for action in harness.build_parser()._actions for o in action.option_strings if o.startswith("--")}
    missing = sorted(f for f in parser_flags - {"--help"} if f"`{f}" not in text)
    assert not missing, f"docs/performance.md does not name {missing}"
    for section in sections.SECTIONS:
        assert f"{section.name} {section.budget_s:g} s" in text, section.name
    for key in FIGURE_KEYS:
        assert f'"{key}"' in text, key


def test_an_architecture_that_does_not_build_is_reported_and_the_others_are_timed():
    import argparse

    from bench import __main__ as harness

    broken = networks.Network("arch:broken", "a plugin gone wrong", [{"type": "no-such-layer"}], (64,), 8)
    (mlp_b8,) = networks.select(["mlp_b8"])
    args = argparse.Namespace(no_torch=True, rounds=1, round_s=0.0)
    out = harness.measure_networks([broken, mlp_b8], [1], {"1": 100.0}, args)
    assert "no-such-layer" in out["arch:broken"]["error"] and out["arch:broken"]["threads"] == {}
    assert out["mlp_b8"]["twin"] == "--no-torch" and out["mlp_b8"]["threads"]["1"]["torch_ms"] is None
    assert "| mlp_b8 | 1 |" in harness.network_table(out, [1])
    reference = networks.Network("mlp", "a reference network must build", [{"type": "no-such-layer"}], (64,), 8,
                                 reference=True)  # fmt: skip
    with pytest.raises(Exception, match="no-such-layer"):
        harness.measure_networks([reference], [1], {}, args)


@pytest.mark.slow
@pytest.mark.torch
def test_the_pool_check_times_each_side_alone_and_interleaved():
    import argparse

    from bench import __main__ as harness

    check = harness.pool_check("mlp_b8", 1, argparse.Namespace(rounds=1, round_s=0.0))
    assert (check["network"], check["threads"]) == ("mlp_b8", 1)
    for side in ("dlcore", "torch"):
        assert check[f"{side}_alone_ms"] > 0 and check[f"{side}_interleaved_ms"] > 0
        assert check[f"{side}_interleaved_over_alone"] == pytest.approx(
            check[f"{side}_interleaved_ms"] / check[f"{side}_alone_ms"], rel=1e-2)
