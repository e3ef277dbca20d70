"""Specs too large to allocate are spec errors, not a MemoryError in build or in loading."""

from __future__ import annotations

import pytest

from dlcore.errors import SpecError
from dlcore.spec import validate
from dlcore.spec.sections import MAX_BATCH_ACTIVATION_BYTES, MAX_FLOPS_PER_SAMPLE, MAX_PARAMS


def _fields(spec) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate(spec)
    return {e.field: e.message for e in info.value.errors}


def test_a_model_with_too_many_parameters_is_refused_naming_the_count():
    # 2 -> 65535 -> 65535 -> 3: about 4.3e9 weights, a 32 GiB allocation in build
    spec = {"dataset": {"type": "spiral"}, "model": {"architecture": "mlp", "width": 65535}}
    fields = _fields(spec)
    assert "model" in fields
    assert f"{MAX_PARAMS:,}" in fields["model"] and "4,29" in fields["model"]


def test_a_model_too_costly_to_run_is_refused_naming_its_flops():
    # two 3x3 convolutions of 512 filters on 256x256 images: about 300 GFLOP per sample
    conv = {"type": "conv2d", "filters": 512, "size": 3, "pad": 1}
    spec = {
        "dataset": {"type": "shapes", "size": 256, "count": 100},
        "model": {"layers": [conv, conv, {"type": "global_avgpool"}, {"type": "affine", "units": 4}]},
        "training": {"batch_size": 1},
    }
    message = _fields(spec)["model"]
    assert "FLOPs" in message and f"{MAX_FLOPS_PER_SAMPLE:,}" in message


def test_a_batch_whose_activations_do_not_fit_is_refused_on_batch_size():
    per_sample = 3 * 256 * 256 * 8  # first conv's output alone
    batch = MAX_BATCH_ACTIVATION_BYTES // (4 * per_sample) + 1
    spec = {
        "dataset": {"type": "shapes", "size": 256, "count": 100},
        "model": {"layers": [{"type": "conv2d", "filters": 24, "size": 1}, {"type": "global_avgpool"}, {"type": "affine", "units": 4}]},
        "training": {"batch_size": int(batch)},
    }
    assert "GiB" in _fields(spec)["training.batch_size"]
    spec["training"]["batch_size"] = 8
    validate(spec)  # the same model with a small batch is fine


def test_a_shapes_dataset_too_large_to_draw_is_refused():
    fields = _fields({"dataset": {"type": "shapes", "size": 256, "count": 200_000}, "model": {"architecture": "mlp"}})
    assert "pixel values" in fields["dataset"]
    validate({"dataset": {"type": "shapes", "size": 256, "count": 600}, "model": {"architecture": "lenet"}})


@pytest.mark.parametrize("pad", [10**9, 3 * 10**9])
def test_sizes_past_int64_do_not_wrap_around(pad):
    # np.prod of (2e9, 2e9, 3) wrapped to a negative count: the spec validated with negative memory_bytes
    spec = {
        "dataset": {"type": "shapes", "size": 8, "count": 8},
        "model": {"layers": [{"type": "conv2d", "filters": 3, "size": 1, "pad": pad}, {"type": "global_avgpool"}, {"type": "affine", "units": 4}]},
        "training": {"batch_size": 1},
    }
    assert "GiB" in _fields(spec)["training.batch_size"]


@pytest.mark.parametrize(
    "section",
    [
        {"optimizer": {"type": "sgd", "lr": float("inf")}},
        {"regularization": [{"type": "l2", "strength": float("inf")}]},
        {"schedule": {"type": "cosine", "t_max": float("inf")}},
        {"diagnostics": {"nan_factor": float("inf")}},
        {"training": {"max_runtime_s": float("inf")}},
        {"loss": {"type": "svm", "margin": float("nan")}},
    ],
)
def test_non_finite_numbers_are_refused_by_every_schema(section):
    # JSON has no Infinity: the normalized spec must stay JSON (the API and PostgreSQL refuse it)
    fields = _fields({"dataset": {"type": "spiral"}, "model": {"architecture": "mlp"}, **section})
    (message,) = fields.values()
    assert "finite" in message
