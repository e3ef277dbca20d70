"""Every error path answers problem+json with a 4xx and the field at fault; no traceback."""

from __future__ import annotations

import io

import numpy as np
import pytest

from api.problems import Problem

API = "/api/v1"


def test_malformed_json_is_400_naming_the_body(client, problem):
    resp = client.post(f"{API}/jobs", data=b'{"model": [', content_type="application/json")
    body = problem(resp, 400, "body")
    assert "JSON" in body["title"] or "JSON" in body["detail"]


@pytest.mark.parametrize("raw", [b"", b"[1, 2]", b'"spec"', b"\xff\xfe\x00"])
def test_a_body_that_is_not_a_json_object_is_400(client, problem, raw):
    problem(client.post(f"{API}/jobs", data=raw, content_type="application/json"), 400, "body")


def test_unknown_component_names_its_field(client, problem, mlp_spec, sent):
    spec = mlp_spec()
    spec["model"]["layers"][1]["type"] = "conv3d"
    body = problem(client.post(f"{API}/jobs", json=spec), 422, "model.layers[1].type")
    message = next(e["message"] for e in body["errors"] if e["field"] == "model.layers[1].type")
    assert "conv3d" in message
    assert sent == []


def test_out_of_range_parameter_names_its_field(client, problem, mlp_spec):
    spec = mlp_spec()
    spec["model"]["layers"][1]["units"] = -4
    body = problem(client.post(f"{API}/jobs", json=spec), 422)
    assert any(e["field"].startswith("model.layers[1].units") for e in body["errors"]), body


def test_unknown_top_level_key_names_it(client, problem, mlp_spec):
    spec = mlp_spec()
    spec["trainig"] = {"epochs": 3}
    body = problem(client.post(f"{API}/jobs", json=spec), 422)
    assert any("trainig" in e["field"] for e in body["errors"]), body


def test_impossible_convolution_shape_gives_the_formula(client, problem, mlp_spec):
    spec = mlp_spec()
    # digits are 1x8x8: a 5x5 kernel at stride 2 without padding gives 8-5)/2+1 = 2.5.
    spec["model"]["layers"] = [{"type": "conv2d", "filters": 4, "size": 5, "stride": 2,
                                "pad": 0}, {"type": "relu"}, {"type": "flatten"},
                               {"type": "affine", "units": 10}]
    body = problem(client.post(f"{API}/jobs", json=spec), 422)
    conv_errors = [e for e in body["errors"] if e["field"].startswith("model.layers[0]")]
    assert conv_errors, body
    assert "2.5" in conv_errors[0]["message"]


def test_unknown_job_is_404_naming_the_id(client, problem):
    for path in ("", "/metrics", "/events", "/model"):
        problem(client.get(f"{API}/jobs/{'f' * 32}{path}"), 404, "job_id")
    problem(client.post(f"{API}/jobs/nope/cancel"), 404, "job_id")
    problem(client.delete(f"{API}/jobs/nope"), 404, "job_id")


def test_unknown_route_and_wrong_method_are_problems(client, problem):
    problem(client.get(f"{API}/nothing-here"), 404, "path")
    resp = client.put(f"{API}/jobs")
    problem(resp, 405, "method")
    assert "POST" in resp.headers["Allow"]


def test_oversized_upload_is_413(client, problem):
    big = b"\0" * 300_000  # the app fixture allows 200,000 bytes
    resp = client.post(f"{API}/datasets", data={"file": (io.BytesIO(big), "big.npz")},
                       content_type="multipart/form-data")
    body = problem(resp, 413, "body")
    assert "200000" in body["detail"]


def test_npz_with_pickled_objects_is_refused_naming_the_file(client, problem):
    buf = io.BytesIO()
    x = np.empty(4, dtype=object)
    x[:] = [{"a": 1}, [2], "three", (4,)]
    np.savez(buf, x=x, y=np.zeros(4, dtype=np.int64))
    resp = client.post(f"{API}/datasets", data={"file": (io.BytesIO(buf.getvalue()), "p.npz")},
                       content_type="multipart/form-data")
    body = problem(resp, 422)
    assert body["errors"][0]["field"] in ("file", "file.x"), body
    assert "pickle" in body["detail"].lower() or "object" in body["detail"].lower()


def test_not_an_npz_is_422_naming_the_file(client, problem):
    resp = client.post(f"{API}/datasets", data={"file": (io.BytesIO(b"hello"), "x.npz")},
                       content_type="multipart/form-data")
    body = problem(resp, 422, "file")
    assert "not an .npz archive" in body["detail"] and "pickle" not in body["detail"]


def test_bad_query_parameters_are_400_naming_them(client, problem):
    problem(client.get(f"{API}/jobs?limit=0"), 400, "limit")
    problem(client.get(f"{API}/jobs?limit=abc"), 400, "limit")
    problem(client.get(f"{API}/jobs?status=sleeping"), 400, "status")
    problem(client.get(f"{API}/jobs?cursor=%%%"), 400, "cursor")


def test_an_unknown_query_parameter_is_a_400_naming_it_not_ignored(client, session, problem):
    from dljobs import jobstore

    job = jobstore.create_job(session, {"name": "x"}, {}, "x")
    body = problem(client.get(f"{API}/jobs?stauts=running"), 400, "stauts")
    assert "status" in body["detail"] and "name" in body["detail"]  # the allowed ones are named
    body = problem(client.get(f"{API}/jobs?limit=5&b=1&a=2"), 400)
    assert [e["field"] for e in body["errors"]] == ["a", "b"]
    problem(client.get(f"{API}/jobs/{job.id}/metrics?sinse=3"), 400, "sinse")
    assert client.get(f"{API}/jobs/{job.id}/metrics?since=3&kind=epoch").status_code == 200


def test_a_bad_name_filter_is_a_400_naming_name(client, problem):
    problem(client.get(f"{API}/jobs?name=a&name=b"), 400, "name")
    problem(client.get(f"{API}/jobs", query_string={"name": "x" * 201}), 400, "name")
    problem(client.get(f"{API}/jobs?name=a%00b"), 400, "name")
    assert client.get(f"{API}/jobs", query_string={"name": "x" * 200}).status_code == 200


@pytest.mark.parametrize(("layers", "field", "says"), [
    # digits are (1, 8, 8) per sample; inside a model dlcore keeps them (8, 8, 1)
    ([{"type": "flatten"}, {"type": "conv2d", "filters": 4, "size": 3}],
     "model.layers[1]", "conv2d: needs an image input (C, H, W), got shape (64,)"),
    ([{"type": "flatten"}, {"type": "maxpool", "size": 2}],
     "model.layers[1]", "maxpool: needs an image input (C, H, W)"),
    ([{"type": "flatten"}, {"type": "inception", "branches": [[{"type": "conv2d", "filters": 2,
                                                                  "size": 1}]]}],
     "model.layers[1].branches", "inception: needs an image input (C, H, W), got (64,)"),
    ([{"type": "residual", "shortcut": "identity",
       "layers": [{"type": "conv2d", "filters": 16, "size": 3, "pad": 1}]}],
     "model.layers[0].shortcut", "maps (1, 8, 8) to (16, 8, 8)"),
    ([{"type": "residual", "shortcut": "projection",
       "layers": [{"type": "conv2d", "filters": 16, "size": 3, "pad": 1},
                  {"type": "flatten"}]}],
     "model.layers[0].shortcut", "not (1, 8, 8) to (1024,)"),
])
def test_shape_errors_speak_the_users_nchw_layout(client, mlp_spec, problem, layers, field, says):
    spec = mlp_spec()
    spec["model"] = {"layers": [*layers, {"type": "flatten"}, {"type": "affine", "units": 10}]}
    body = problem(client.post(f"{API}/jobs", json=spec), 422, field)
    message = next(e["message"] for e in body["errors"] if e["field"] == field)
    assert says in message, message
    assert "(8, 8, 1)" not in message and "(8, 8, 16)" not in message and "internal" not in message


def test_an_uncaught_error_is_a_500_problem_without_traceback(app, client, problem, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")

    resp = client.get("/boom")
    body = problem(resp, 500)
    assert "secret" not in resp.get_data(as_text=True)
    assert body["type"].endswith("/internal")
    assert any("secret internals" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_a_raised_problem_keeps_its_fields(app, client, problem):
    @app.get("/teapot")
    def teapot():
        raise Problem(418, "Teapot", "short and stout", [{"field": "spout", "message": "m"}])

    body = problem(client.get("/teapot"), 418, "spout")
    assert body["detail"] == "short and stout"
