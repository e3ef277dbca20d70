"""The dashboard's pages through the Flask test client: what each renders, who may see it,
and that bad input is a problem+json naming the field, never a 500."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from api.page_compare import ABSENT, flatten, spec_rows
from api.page_examples import EXAMPLES_DIR, example_specs
from api.page_render import PAGE_HEADERS
from api.pages import MAX_COMPARED
from dljobs.db.models import Job

API = "/api/v1"


@pytest.fixture
def browser(anon_client, admin_token):
    """A client signed in by the login URL's cookie, as a browser is."""
    assert anon_client.get(f"/?token={admin_token}").status_code == 303
    return anon_client


def _job(client, spec) -> str:
    resp = client.post(f"{API}/jobs", json=spec)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _embedded(html: str, element_id: str):
    """The JSON a page embeds in <script type="application/json" id=...>."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.DOTALL)
    assert found, element_id
    return json.loads(found.group(1))


def test_the_job_list_page_needs_the_cookie_and_names_the_caller(browser):
    resp = browser.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert "test-admin" in html and 'id="jobs-body"' in html and "jobs.js" in html
    for status in ("queued", "running", "succeeded"):
        assert f'<option value="{status}">' in html  # the filter offers the lifecycle's statuses
    assert resp.headers["Content-Security-Policy"] == PAGE_HEADERS["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_jobs_page_renders_its_model_table_spec_and_buttons(browser, client, mlp_spec):
    job_id = _job(client, mlp_spec())
    resp = browser.get(f"/jobs/{job_id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    job = _embedded(html, "job-data")
    assert job["id"] == job_id and job["status"] == "queued"
    assert job["summary"]["layers"][1]["type"] == "affine"
    # the model table: one row per layer (and the input), parameters with separators
    assert html.count('<tr class="layer">') == len(job["summary"]["layers"])
    assert f'{job["summary"]["total_params"]:,}' in html
    for button in ("btn-cancel", "btn-rerun", "btn-download"):
        assert f'id="{button}"' in html
    assert "uPlot.iife.min.js" in html
    assert '<pre class="spec">' in html and "digits-mlp" in html.split('<pre class="spec">')[1]


def test_a_jobs_page_escapes_what_the_spec_holds(browser, client, mlp_spec):
    spec = mlp_spec()
    spec["name"] = "</script><script>alert(1)</script>"
    job_id = _job(client, spec)
    html = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert _embedded(html, "job-data")["name"] == spec["name"]


def test_another_owners_job_page_is_404_like_a_missing_one(app, client, owner_client, other_owner_client,
                                                          mlp_spec, problem):
    job_id = _job(owner_client, mlp_spec())
    assert owner_client.get(f"/jobs/{job_id}").status_code == 200
    problem(other_owner_client.get(f"/jobs/{job_id}"), 404, "job_id")
    problem(client.get("/jobs/not-a-job"), 404, "job_id")
    problem(client.get("/jobs/" + "x" * 65), 404, "job_id")


@pytest.mark.parametrize("path", ["/jobs/0123", "/submit", "/compare?jobs=a"])
def test_pages_without_credentials_answer_the_login_hint(anon_client, problem, path):
    body = problem(anon_client.get(path), 401, "cookie")
    assert "login URL" in body["detail"]


def test_the_index_without_credentials_still_says_how_to_log_in(anon_client, problem):
    body = problem(anon_client.get("/"), 401, "token")
    assert "login URL" in body["detail"]


def test_compare_lays_the_specs_side_by_side_and_marks_the_differences(browser, client, mlp_spec):
    slow, fast = mlp_spec(), mlp_spec()
    fast["optimizer"]["lr"] = 0.1
    ids = [_job(client, slow), _job(client, fast)]
    resp = browser.get(f"/compare?jobs={ids[0]}, {ids[1]},{ids[0]}")  # blanks and repeats are fine
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert [job["id"] for job in _embedded(html, "compare-data")] == ids
    differing = re.findall(r'<tr class="differs"><th scope="row"><code>([^<]+)</code>', html)
    assert differing == ["optimizer.lr"]


@pytest.mark.parametrize("query", ["", "?jobs=", "?jobs=,,", "?jobs=a%00b", "?jobs=a/b",
                                   "?jobs=" + ",".join(f"j{i}" for i in range(MAX_COMPARED + 1))])
def test_a_bad_compare_list_is_a_400_naming_jobs(client, problem, query):
    problem(client.get(f"/compare{query}"), 400, "jobs")


def test_compare_of_an_unknown_job_is_404_and_unknown_parameters_400(client, mlp_spec, problem):
    job_id = _job(client, mlp_spec())
    problem(client.get(f"/compare?jobs={job_id},{'0' * 32}"), 404, "job_id")
    problem(client.get(f"/compare?jobs={job_id}&jbos=1"), 400, "jbos")
    problem(client.get(f"/jobs/{job_id}?x=1"), 400, "x")


def test_the_submit_page_offers_every_example(browser):
    html = browser.get("/submit").get_data(as_text=True)
    examples = _embedded(html, "examples-data")
    shipped = sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))
    assert sorted(examples) == shipped and next(iter(examples)) == "digits_cnn"
    assert examples["digits_mlp"] == json.loads((EXAMPLES_DIR / "digits_mlp.json").read_text())
    assert 'id="submit-form"' in html and "submit.js" in html


def test_examples_that_are_not_json_objects_are_left_out(tmp_path: Path):
    (tmp_path / "good.json").write_text('{"name": "good"}')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("{}")
    assert example_specs(tmp_path) == {"good": {"name": "good"}}
    assert example_specs(tmp_path / "missing") == {}


def test_the_static_files_and_the_vendored_chart_library_are_served(anon_client):
    for path in ("/static/dashboard.css", "/static/dashboard.js", "/static/job.js",
                 "/static/vendor/uplot/uPlot.iife.min.js", "/static/vendor/uplot/uPlot.min.css",
                 "/static/vendor/uplot/LICENSE"):
        resp = anon_client.get(path)
        assert resp.status_code == 200, path
    assert b"MIT" in anon_client.get("/static/vendor/uplot/LICENSE").data


def test_flatten_names_every_leaf_by_its_dotted_path():
    spec = {"model": {"layers": [{"type": "affine", "units": 4}, {"type": "relu"}]},
            "regularization": [], "training": {"epochs": 2}}
    assert flatten(spec) == {"model.layers[0].type": "affine", "model.layers[0].units": 4,
                             "model.layers[1].type": "relu", "regularization": [],
                             "training.epochs": 2}


def test_spec_rows_keep_first_seen_order_and_mark_absent_fields():
    rows = spec_rows([{"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": None}])
    assert [(r.field, r.values, r.differs) for r in rows] == [
        ("a", ["1", "1"], False), ("b.c", ["2", "3"], True), ("d", [ABSENT, "null"], True)]


def test_a_summary_missing_figures_renders_dashes_not_an_error(browser, client, session, mlp_spec):
    job_id = _job(client, mlp_spec())
    job = session.get(Job, job_id)
    job.summary = {"layers": [{"index": 0, "type": "mystery"}]}  # as an older release might have stored
    session.commit()
    resp = browser.get(f"/jobs/{job_id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "mystery" in html and html.count('<tr class="layer">') == 1


def test_the_vendored_uplot_is_the_pinned_version_with_its_licence():
    folder = Path(__file__).resolve().parents[2] / "api" / "static" / "vendor" / "uplot"
    readme = (folder / "README.md").read_text()
    version = re.search(r"uplot@(\d+\.\d+\.\d+)", readme).group(1)
    assert (folder / "uPlot.iife.min.js").read_text().startswith(
        f"/*! https://github.com/leeoniya/uPlot (v{version}) */")
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert f"uPlot {version}" in (folder.parents[2] / "templates" / "charts_head.html").read_text()
