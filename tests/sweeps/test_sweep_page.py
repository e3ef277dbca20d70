"""``/sweeps/<id>``, the sweep's page, on an app whose broker is a list: who may see it, and
what the server puts in it (the script draws the rest: tests/e2e/test_e2e_sweep_page.py)."""

from __future__ import annotations

import json
import re

from api.page_render import PAGE_HEADERS
from dljobs.lifecycle import ACTIVE, STATUSES, SWEEP_FINISHED


def create_sweep(client, spec, name="lr-page") -> dict:
    body = {"name": name, "base": spec(epochs=1), "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": {"type": "coarse_to_fine", "stages": [{"trials": 2, "epochs": 1}, {"trials": 1, "epochs": 2}]},
            "metric": "val_accuracy", "max_concurrent": 2}
    resp = client.post("/api/v1/sweeps", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_the_owner_gets_the_page_of_the_sweep_on_the_dashboards_base(owner_client, mlp_spec):
    sweep = create_sweep(owner_client, mlp_spec)
    resp = owner_client.get(f"/sweeps/{sweep['id']}")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    data = json.loads(re.search(r'<script type="application/json" id="sweep-page">(.*?)</script>', page).group(1))
    # the script stops polling on the lifecycle's own statuses, not on a copy of them
    assert data == {"id": sweep["id"], "finished_sweep_statuses": sorted(s.value for s in SWEEP_FINISHED)}
    assert "<title>sweep lr-page · dljobs</title>" in page
    assert 'src="/static/sweep.js"' in page and 'src="/static/charts.js"' in page
    assert f'data-active="{" ".join(s.value for s in STATUSES if s in ACTIVE)}"' in page


def test_the_page_answers_the_dashboards_headers(owner_client, mlp_spec):
    sweep = create_sweep(owner_client, mlp_spec)
    resp = owner_client.get(f"/sweeps/{sweep['id']}")
    assert {k: resp.headers[k] for k in PAGE_HEADERS} == PAGE_HEADERS


def test_another_owner_and_an_unknown_or_impossible_id_get_a_404_problem(owner_client, other_owner_client,
                                                                       mlp_spec, problem):
    sweep = create_sweep(owner_client, mlp_spec)
    problem(other_owner_client.get(f"/sweeps/{sweep['id']}"), 404, "sweep_id")
    problem(owner_client.get("/sweeps/" + "0" * 32), 404, "sweep_id")
    problem(owner_client.get("/sweeps/not%00an%20id"), 404, "sweep_id")


def test_an_admin_sees_any_owners_sweep_page(owner_client, client, mlp_spec):
    sweep = create_sweep(owner_client, mlp_spec)
    assert client.get(f"/sweeps/{sweep['id']}").status_code == 200


def test_without_a_token_or_cookie_the_page_is_a_401_saying_how_to_log_in(owner_client, anon_client,
                                                                          mlp_spec, problem):
    sweep = create_sweep(owner_client, mlp_spec)
    body = problem(anon_client.get(f"/sweeps/{sweep['id']}"), 401, "cookie")
    assert "login URL" in body["detail"]

