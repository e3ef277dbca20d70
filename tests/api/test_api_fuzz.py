"""Garbage requests never produce a 5xx: every answer is a 2xx or a 4xx problem."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

API = "/api/v1"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)

# Specs that look almost right: real keys with random values, so validation goes deep.
spec_like = st.fixed_dictionaries({}, optional={
    "name": json_values,
    "dataset": st.fixed_dictionaries({"type": st.sampled_from(["digits", "npz", "spiral", "x"])},
                                     optional={"dataset_id": json_values, "path": json_values,
                                               "val_fraction": json_values}),
    "model": st.fixed_dictionaries({}, optional={
        "layers": st.lists(st.fixed_dictionaries(
            {"type": st.sampled_from(["affine", "conv2d", "relu", "flatten", "maxpool", "?"])},
            optional={"units": json_values, "size": json_values, "stride": json_values,
                      "filters": json_values}), max_size=4),
        "architecture": json_values}),
    "training": st.dictionaries(st.sampled_from(["epochs", "batch_size", "seed", "dtype", "x"]),
                                json_values, max_size=3),
    "optimizer": json_values,
    "regularization": json_values,
})

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _no_5xx(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code >= 400:
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json(force=True)["status"] == resp.status_code


@FUZZ
@given(body=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
def test_garbage_bodies_never_5xx(client, body):
    for path in (f"{API}/jobs", f"{API}/datasets"):
        _no_5xx(client.post(path, data=body, content_type="application/json"))


@FUZZ
@given(spec=spec_like)
def test_almost_specs_never_5xx(client, spec):
    _no_5xx(client.post(f"{API}/jobs", json=spec))


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["limit", "cursor", "status", "since", "kind"]),
                             st.text(max_size=8), max_size=3),
       job_id=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and "?" not in s
                                                      and "#" not in s))
def test_garbage_queries_and_ids_never_5xx(client, query, job_id):
    _no_5xx(client.get(f"{API}/jobs", query_string=query))
    _no_5xx(client.get(f"{API}/jobs/{job_id}/metrics", query_string=query))
    _no_5xx(client.post(f"{API}/jobs/{job_id}/cancel"))
