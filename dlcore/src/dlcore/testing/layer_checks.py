"""Conformance checks for layers and activations (anything subclassing ``Layer``).

Every check runs the layer on each of its ``example_shapes`` (internal
per-sample layout: ``(D,)`` or ``(H, W, C)``) with a batch of ``BATCH``
samples, small enough that the whole kit over every installed component runs
in well under a minute on two cores.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping

import numpy as np

from dlcore.gradcheck import check_layer, gradient_check_input, rel_error, tolerance
from dlcore.testing.common import assert_same_arrays, label, make, npz_roundtrip, quiet
from dlcore.workspace import Workspace

#: Samples per batch in every layer check.
BATCH = 3
#: Above this many parameters, gradients are checked on sampled entries only.
MAX_FULL_PARAMS = 2000
#: Sampled entries per array for large layers (and for inputs larger than MAX_FULL_PARAMS).
SAMPLED_ENTRIES = 20
#: Relative error bound of a float64 gradient check (from the one table, dlcore.gradcheck.TOLERANCES).
GRAD_TOL = tolerance(np.float64, "gradient")
#: Relative error bound of a float32 forward against the same layer in float64 (same table).
FLOAT32_TOL = tolerance(np.float32, "against_float64")


def _shapes(component_cls) -> list[tuple[int, ...]]:
    shapes = [tuple(int(s) for s in shape) for shape in component_cls.example_shapes]
    assert shapes, f"{component_cls.__name__}: 'example_shapes' is empty"
    return shapes


def _built(component_cls, config, in_shape, dtype=np.float64, seed=0):
    """A layer built for ``in_shape`` with parameters drawn from a generator seeded ``seed``."""
    layer = make(component_cls, config)
    layer.build(in_shape, np.random.default_rng(seed), dtype=dtype)
    return layer


def _input(in_shape, dtype=np.float64, seed=10) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((BATCH, *in_shape)).astype(dtype)


def _params(layer) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in layer.named_params()}


def _state(layer) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in layer.named_state()}


def _where(component_cls, config, in_shape) -> str:
    return f"{label(component_cls, config)} on input {in_shape}"


def _write_arrays(layer, params: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], what: str) -> None:
    """Copy arrays into a built layer's own storage, in place (how checkpoints are loaded)."""
    for named, source, kind in ((layer.named_params(), params, "params"), (layer.named_state(), state, "state")):
        targets = dict(named)
        assert sorted(targets) == sorted(source), f"{what}: {kind} keys {sorted(targets)} vs saved {sorted(source)}"
        for key, arr in targets.items():
            assert arr.shape == source[key].shape, f"{what}: {kind} {key!r} shape {arr.shape} vs saved {source[key].shape}"
            arr[...] = source[key]


def check_shape_inference(component_cls, config: Mapping) -> None:
    """``infer(in_shape)`` gives the real output shape and parameter count, without data."""
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        with quiet():
            info = make(component_cls, config).infer(in_shape)
            layer = _built(component_cls, config, in_shape)
            again = layer.infer(in_shape)
            out = layer.forward(_input(in_shape), training=False, rng=np.random.default_rng(0))
        assert info == again, f"{where}: infer() before and after build differ: {info} vs {again}"
        assert isinstance(info.out_shape, tuple) and all(isinstance(s, (int, np.integer)) for s in info.out_shape), (
            f"{where}: infer().out_shape must be a tuple of ints, got {info.out_shape!r}"
        )
        assert out.shape == (BATCH, *info.out_shape), (
            f"{where}: infer() says per-sample output {tuple(info.out_shape)} but forward returned "
            f"{out.shape[1:]} (batch {out.shape})"
        )
        count = sum(int(np.size(a)) for _, a in layer.named_params())
        assert count == info.params, f"{where}: infer() says {info.params} parameters, build() made {count}"
        assert info.flops >= 0, f"{where}: infer().flops is negative ({info.flops})"


def check_gradients(component_cls, config: Mapping) -> None:
    """Analytic gradients of the input and every parameter match centred differences in float64.

    Both modes; stochastic layers draw from a generator re-seeded on every call.
    Inputs are first moved off the layer's declared ``kinks`` and, when it declares
    ``ties``, spread apart (:func:`dlcore.gradcheck.gradient_check_input`).
    Layers with more than ``MAX_FULL_PARAMS`` parameters are checked on
    ``SAMPLED_ENTRIES`` random entries per array.
    """
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        for training in (True, False):
            with quiet():
                layer = _built(component_cls, config, in_shape)
                x = gradient_check_input(_input(in_shape), component_cls.kinks, component_cls.ties)
                n_params = sum(int(np.size(a)) for _, a in layer.named_params())
                big = n_params > MAX_FULL_PARAMS or x.size > MAX_FULL_PARAMS
                errors = check_layer(layer, x, training=training, max_entries=SAMPLED_ENTRIES if big else None)
                grads = {k: g for k, g in layer.named_grads()}
                params = dict(layer.named_params())
            mode = "training" if training else "evaluation"
            assert sorted(grads) == sorted(params), (
                f"{where}: after backward, grads keys {sorted(grads)} differ from params keys {sorted(params)}"
            )
            for key, g in grads.items():
                assert np.shape(g) == params[key].shape, f"{where}: grad {key!r} shape {np.shape(g)} vs param {params[key].shape}"
            bad = {k: e for k, e in errors.items() if not e < GRAD_TOL}
            assert not bad, (
                f"{where}, {mode} mode: relative error of analytic vs numerical gradient above {GRAD_TOL:g}: "
                + ", ".join(f"{k}: {e:.3g}" for k, e in bad.items())
            )


def check_save_load(component_cls, config: Mapping) -> None:
    """Params and state round-trip through ``.npz`` (no pickle) and give the same outputs when loaded."""
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        x = _input(in_shape)
        with quiet():
            layer = _built(component_cls, config, in_shape, seed=0)
            # One training step first, so running statistics have moved away from their initial values.
            layer.forward(x, training=True, rng=np.random.default_rng(1))
            saved = {f"params/{k}": v for k, v in _params(layer).items()}
            saved.update({f"state/{k}": v for k, v in _state(layer).items()})
        loaded = npz_roundtrip(saved)
        assert_same_arrays(loaded, saved, f"{where}: .npz round trip")
        with quiet():
            fresh = _built(component_cls, config, in_shape, seed=1)
            _write_arrays(
                fresh,
                {k.removeprefix("params/"): v for k, v in loaded.items() if k.startswith("params/")},
                {k.removeprefix("state/"): v for k, v in loaded.items() if k.startswith("state/")},
                where,
            )
            expected = layer.forward(x, training=False, rng=np.random.default_rng(2))
            got = fresh.forward(x, training=False, rng=np.random.default_rng(2))
        assert np.array_equal(expected, got), (
            f"{where}: a layer loaded from saved params and state computes something else "
            f"(max difference {np.max(np.abs(expected - got)):.3g}): does it keep arrays outside params/state?"
        )


def check_deterministic(component_cls, config: Mapping) -> None:
    """The same seed gives the same parameters and outputs; no hidden global randomness."""
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        x = _input(in_shape)
        for training in (True, False):
            # A fresh pair per mode: training forwards move running statistics, which evaluation reads.
            with quiet():
                a = _built(component_cls, config, in_shape, seed=3)
                b = _built(component_cls, config, in_shape, seed=3)
                assert_same_arrays(_params(a), _params(b), f"{where}: two builds with one seed")
                outs = [layer.forward(x, training=training, rng=np.random.default_rng(4)) for layer in (a, b, a)]
                mode = "training" if training else "evaluation"
                assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2]), (
                    f"{where}, {mode} mode: the same parameters, input and rng seed gave different outputs; "
                    "draw randomness only from the rng passed to forward"
                )


def check_training_modes(component_cls, config: Mapping) -> None:
    """Modes behave as declared: evaluation never random; ``stochastic``/``mode_dependent`` honest."""
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        x = _input(in_shape)
        with quiet():
            layer = _built(component_cls, config, in_shape)
            ev = [layer.forward(x, training=False, rng=rng) for rng in (None, np.random.default_rng(5), np.random.default_rng(6))]
            tr = [layer.forward(x, training=True, rng=np.random.default_rng(s)) for s in (5, 6)]
            ev_after = layer.forward(x, training=False, rng=None)
        assert np.array_equal(ev[0], ev[1]) and np.array_equal(ev[0], ev[2]), (
            f"{where}: evaluation mode depends on the rng; evaluation must be deterministic"
        )
        if not layer.stochastic:
            assert np.array_equal(tr[0], tr[1]), (
                f"{where}: training output depends on the rng but the layer declares stochastic = False"
            )
        if not layer.mode_dependent:
            assert np.allclose(tr[0], ev[0], rtol=1e-12, atol=1e-12), (
                f"{where}: training and evaluation outputs differ but the layer declares mode_dependent = False"
            )
            assert np.allclose(ev_after, ev[0], rtol=1e-12, atol=1e-12), (
                f"{where}: a training forward changed the evaluation output but mode_dependent = False"
            )


def check_no_input_mutation(component_cls, config: Mapping) -> None:
    """``forward`` never writes into ``x``; ``backward`` never writes into ``dout``."""
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        with quiet():
            layer = _built(component_cls, config, in_shape)
            for training in (True, False):
                x = _input(in_shape)
                x_copy = x.copy()
                out = layer.forward(x, training=training, rng=np.random.default_rng(7))
                mode = "training" if training else "evaluation"
                assert np.array_equal(x, x_copy), f"{where}, {mode} mode: forward modified its input x in place"
                dout = np.random.default_rng(8).standard_normal(out.shape)
                dout_copy = dout.copy()
                layer.backward(dout)
                assert np.array_equal(dout, dout_copy), f"{where}, {mode} mode: backward modified dout in place"
                assert np.array_equal(x, x_copy), f"{where}, {mode} mode: backward modified the input x in place"


def check_float32(component_cls, config: Mapping) -> None:
    """float32 in, float32 out (forward and backward), within ``FLOAT32_TOL`` of the float64 result."""
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        x64 = _input(in_shape)
        with quiet():
            ref = _built(component_cls, config, in_shape, dtype=np.float64)
            # Training forward moves running statistics; copy them along with the parameters.
            ref.forward(x64, training=True, rng=np.random.default_rng(9))
            low = _built(component_cls, config, in_shape, dtype=np.float32)
            for key, arr in low.named_params():
                assert arr.dtype == np.float32, f"{where}: build(dtype=float32) made param {key!r} {arr.dtype}"
            _write_arrays(low, _params(ref), _state(ref), where)
            out64 = ref.forward(x64, training=False)
            out32 = low.forward(x64.astype(np.float32), training=False)
            tr32 = low.forward(x64.astype(np.float32), training=True, rng=np.random.default_rng(9))
            dx32 = low.backward(np.ones_like(tr32))
        assert out64.dtype == np.float64, f"{where}: float64 input gave {out64.dtype} output"
        assert out32.dtype == np.float32 and tr32.dtype == np.float32, (
            f"{where}: float32 input gave {out32.dtype} (evaluation) / {tr32.dtype} (training) output"
        )
        assert dx32 is None or dx32.dtype == np.float32, f"{where}: float32 backward returned dx of {dx32.dtype}"
        for key, g in low.named_grads():
            assert np.asarray(g).dtype == np.float32, f"{where}: float32 backward wrote grad {key!r} as {np.asarray(g).dtype}"
        err = rel_error(out32, out64)
        assert err < FLOAT32_TOL, f"{where}: float32 forward is {err:.3g} (relative) from float64, above {FLOAT32_TOL:g}"


#: Threads and rounds of the concurrency check: enough for interleavings at a tiny switch interval.
CONCURRENT_THREADS, CONCURRENT_ROUNDS = 6, 25


def _concurrent_mismatches(layer, inputs: list[np.ndarray], expected: list[np.ndarray]) -> list[str]:
    """Run ``layer``'s evaluation forward on ``inputs[t]`` in thread t, CONCURRENT_ROUNDS times, each
    call in a workspace of its own; the (thread, round) pairs whose output differs from ``expected[t]``."""
    mismatches: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(inputs))

    def run(t: int) -> None:
        try:
            start.wait()
            for r in range(CONCURRENT_ROUNDS):
                with Workspace().active():
                    out = np.array(layer.forward(inputs[t], training=False))
                if not np.array_equal(out, expected[t]):
                    mismatches.append(f"thread {t}, round {r}")
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the check, not lost in the thread
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so unsafe layers interleave
    try:
        threads = [threading.Thread(target=run, args=(t,)) for t in range(len(inputs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    if errors:
        raise errors[0]
    return mismatches


def check_concurrent_evaluation(component_cls, config: Mapping) -> None:
    """One built layer answers evaluation forwards from several threads at once exactly as one by one.

    Each caller brings its own :class:`dlcore.workspace.Workspace` (as ``Model.scores`` does): a layer
    keeping scratch arrays or per-call values on ``self`` gives mixed-up answers here, which a
    service predicting with one shared model and no lock would return to its users.
    """
    for in_shape in _shapes(component_cls):
        where = _where(component_cls, config, in_shape)
        with quiet():
            layer = _built(component_cls, config, in_shape, seed=5)
        inputs = [_input(in_shape, seed=20 + t) for t in range(CONCURRENT_THREADS)]
        expected = []
        for x in inputs:
            with Workspace().active():
                expected.append(np.array(layer.forward(x, training=False)))
        mismatches = _concurrent_mismatches(layer, inputs, expected)
        assert not mismatches, (
            f"{where}: evaluation forwards from {CONCURRENT_THREADS} threads at once differ from the same "
            f"forwards one by one ({', '.join(mismatches[:3])}); keep scratch arrays in "
            "Workspace.current() and per-call values in the returned cache, never on self"
        )

LAYER_CHECKS = (
    check_shape_inference,
    check_gradients,
    check_save_load,
    check_deterministic,
    check_training_modes,
    check_no_input_mutation,
    check_float32,
    check_concurrent_evaluation,
)
