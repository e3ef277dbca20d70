"""Property: a generated job request, junk values mixed in, is either valid and buildable
(``prepare_job_request`` accepts it, the model builds and runs one forward pass) or
refused with exactly one ``SpecError`` whose every error names a field; nothing else.

The service's own fields (``dataset.dataset_id``, ``training.warm_start``,
``training.max_attempts``) get junk too: they are resolved against a real (empty) database.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dlcore.errors import ConfigError, SpecError
from dlcore.spec import build
from dlcore.spec.sections import TOP_LEVEL_KEYS
from dljobs.db.migrate import upgrade
from dljobs.db.session import session_factory
from dljobs.settings import Settings
from dljobs.specs import prepare_job_request

EXAMPLES = 150

JUNK = st.one_of(
    st.sampled_from(["", "x", "../../etc/passwd", "a\x00b", "%2e%2e%2f", "\ud800", [], {},
                     None, True, 1.5, -1, 0, float("nan"), float("inf"), 10**30, -(10**30)]),
    st.text(max_size=8), st.integers(), st.floats(),
)


def maybe(strategy):
    """``strategy`` most of the time, junk otherwise."""
    return st.one_of(strategy, strategy, strategy, JUNK)


def layer(m):
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("affine"), "units": m(st.integers(1, 6))}),
        st.fixed_dictionaries({"type": m(st.sampled_from(["relu", "tanh", "flatten"]))}),
    )


def dataset(m):
    spiral = st.fixed_dictionaries({"type": st.just("spiral"),
                                    "points_per_class": m(st.sampled_from([2, 4])),
                                    "classes": m(st.sampled_from([3]))})
    return st.one_of(spiral, m(st.fixed_dictionaries(
        {"type": st.just("npz")}, optional={"dataset_id": m(st.text(max_size=8)),
                                            "path": JUNK})))


@st.composite
def job_request(draw) -> dict:
    """A request: half the time every value is a plausible one, else junk is mixed in."""
    clean = draw(st.booleans())
    m = (lambda strategy: strategy) if clean else maybe
    layers = draw(st.lists(layer(m), max_size=3))
    if clean or draw(st.integers(0, 3)):  # mostly the right head, so many requests are valid
        layers += [{"type": "flatten"}, {"type": "affine", "units": 3}]
    if not clean and draw(st.integers(0, 3)) == 0:
        layers.append(draw(st.dictionaries(
            st.sampled_from(["type", "units", "rate", "", "\x00"]), JUNK, max_size=3)))
    body = {"dataset": draw(dataset(m) if clean else m(dataset(m))),
            "model": draw(m(st.just({"layers": layers})))}
    training = {"epochs": draw(m(st.sampled_from([1, 2]))),
                "batch_size": draw(m(st.sampled_from([1, 8])))}
    extras = {"dtype": ["float32", "float64"], "seed": [0, 7], "max_attempts": [1, 3],
              "max_runtime_s": [60]}
    if not clean:
        extras.update({"warm_start": ["no-such-job"], "x": [1]})
    for key, values in extras.items():
        if draw(st.integers(0, 2)) == 0:
            training[key] = draw(m(st.sampled_from(values)))
    body["training"] = training
    if draw(st.booleans()):
        body["optimizer"] = {"type": draw(m(st.sampled_from(["sgd", "adam", "momentum"]))),
                             "lr": draw(m(st.sampled_from([0.1, 0.001])))}
    if draw(st.booleans()):
        body["schedule"] = {"type": draw(m(st.sampled_from(["constant", "cosine"])))}
    if not clean and draw(st.integers(0, 3)) == 0:
        body[draw(st.text(max_size=6))] = draw(JUNK)
    if not clean and draw(st.integers(0, 3)) == 0:
        body["name"] = draw(JUNK)
    return body


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('spec-property') / 'db.sqlite'}"
    upgrade(url)
    return session_factory(Settings(database_url=url))


def test_a_generated_request_is_buildable_or_one_error_with_field_paths(sessions, record_property):
    outcomes: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=job_request())
    def check(body):
        with sessions() as session:
            try:
                prepared = prepare_job_request(session, body)
            except SpecError as exc:
                assert exc.errors, body
                for error in exc.errors:
                    assert isinstance(error, ConfigError) and error.message, body
                    root = error.field.split(".")[0].split("[")[0]
                    # a field path from the top (or the unknown top-level key itself)
                    assert error.field and (root in TOP_LEVEL_KEYS or root == "body"
                                            or error.field in body), (error, body)
                outcomes["invalid"] = outcomes.get("invalid", 0) + 1
                event("invalid")
                return
        model = build(prepared.spec)
        x = np.zeros((2, *model.sample_shape))
        assert model.predict(x).shape == (2,)
        outcomes["valid and built"] = outcomes.get("valid and built", 0) + 1
        event("valid")

    check()
    # the example count belongs in CI's log, not only on failure (tests/conftest.py prints it)
    record_property("example_counts", f"spec property: {sum(outcomes.values())} generated requests: {outcomes}")
    assert outcomes.get("invalid") and outcomes.get("valid and built")
