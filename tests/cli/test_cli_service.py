"""The job CLI against a running ``dljobs up`` (the e2e ``embedded_service``: two workers).

Every exit code is tested here against real processes: 0 (done, job succeeded), 1 (the
job failed or was cancelled), 2 (a usage error or any 4xx, the problem on stderr), 3 (no
service, or a 5xx), 130 (Ctrl-C while following; the job keeps running).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlcore.datasets.digits import Digits
from dlcore.loading import load_model
from dljobs.cli import main
from dljobs.embedded import free_port
from dljobs.lifecycle import ACTIVE, JobStatus

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
DLJOBS = str(Path(sys.executable).with_name("dljobs"))


def cli(service, *args: str, token: str | None = None, url: str | None = None):
    """``dljobs ARGS`` in this process, pointed at the service by DLJOBS_URL and DLJOBS_TOKEN."""
    env = {"DLJOBS_URL": url or service.base_url, "DLJOBS_TOKEN": token or service.token}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def env_of(service) -> dict:
    return dict(os.environ, DLJOBS_URL=service.base_url, DLJOBS_TOKEN=service.token, PYTHONUNBUFFERED="1")


def write_spec(tmp_path: Path, spec: dict, name: str = "spec.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return str(path)


def long_spec(make_spec, name: str) -> dict:
    """A job that runs for minutes unless cancelled (every test that starts one cancels it)."""
    return make_spec(name, epochs=3000)


def wait_running(client, job_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(job_id)
        if job["status"] == JobStatus.RUNNING and job["progress"].get("iteration"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not training after {timeout_s} s: {client.get(job_id)}")


# ---------------------------------------------------------------------------- exit code 0


@pytest.mark.slow
def test_submit_digits_cnn_follow_draws_the_bar_to_100_percent_and_prints_the_accuracy(embedded_service):
    """What must be shown: the flagship example followed to its end, as a person runs it."""
    done = subprocess.run([DLJOBS, "submit", str(ROOT / "examples" / "digits_cnn.json"), "--follow"],
                          env=env_of(embedded_service), capture_output=True, text=True, timeout=300,
                          check=False)
    print(done.stderr[-2000:], done.stdout, sep="\n")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "100%|" in done.stderr and "540/540" in done.stderr  # 12 epochs of 45 batches
    assert " eta " in done.stderr  # the measured ETA was shown along the way
    assert not [line for line in done.stderr.splitlines() if line.startswith(("warning ", "error "))]
    accuracy = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["val_accuracy"])
    assert float(accuracy.split()[1]) >= 0.97
    job_id = done.stdout.split()[1]
    assert f"/api/v1/jobs/{job_id}/model" in done.stdout
    assert embedded_service.client().get(job_id)["status"] == JobStatus.SUCCEEDED


def test_jobs_lists_filters_by_name_and_status_as_a_table_and_as_json(embedded_service, make_spec, tmp_path):
    ids = []
    for name in ("cli-list-a", "cli-list-b"):
        result = cli(embedded_service, "submit", write_spec(tmp_path, make_spec("ignored")), "--name", name)
        assert result.exit_code == 0, result.output
        ids.append(result.stdout.strip())
    client = embedded_service.client()
    for job_id in ids:
        assert client.wait(job_id, timeout=120)["status"] == JobStatus.SUCCEEDED
    listed = cli(embedded_service, "jobs", "--name", "cli-list-", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [j["id"] for j in rows] == ids[::-1]  # newest first
    assert [j["name"] for j in rows] == ["cli-list-b", "cli-list-a"]
    limited = json.loads(cli(embedded_service, "jobs", "--name", "cli-list-", "--limit", "1", "--json").stdout)
    assert [j["id"] for j in limited] == [ids[1]]
    none_queued = json.loads(cli(embedded_service, "jobs", "--name", "cli-list-", "--status", "queued,running",
                                 "--json").stdout)
    assert none_queued == []
    table = cli(embedded_service, "jobs", "--name", "cli-list-", "--status", "succeeded").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "PROGRESS", "VAL", "ACC", "AGE"]
    assert [line.split()[:4] for line in table[1:]] == [[ids[1], "cli-list-b", "succeeded", "100%"],
                                                       [ids[0], "cli-list-a", "succeeded", "100%"]]


def test_show_download_predict_rerun_and_delete_a_job(embedded_service, make_spec, tmp_path):
    submitted = cli(embedded_service, "submit", write_spec(tmp_path, make_spec("cli-flow")), "--follow")
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.split()[1]
    assert "succeeded" in submitted.stdout and "val_accuracy" in submitted.stdout

    shown = cli(embedded_service, "show", job_id)
    assert shown.exit_code == 0, shown.output
    fields = dict(line.split(None, 1) for line in shown.stdout.splitlines() if line.split()[0] in ("status", "model"))
    assert fields["status"].strip() == "succeeded"
    assert fields["model"].strip() == f"{embedded_service.base_url}/api/v1/jobs/{job_id}/model"
    as_json = json.loads(cli(embedded_service, "show", job_id, "--json").stdout)
    assert as_json["spec"]["name"] == "cli-flow" and as_json["rerun_of"] is None

    model_path = tmp_path / "model.npz"
    downloaded = cli(embedded_service, "download", job_id, "-o", str(model_path))
    assert downloaded.exit_code == 0, downloaded.output
    x, _ = Digits().load()
    np.save(tmp_path / "inputs.npy", x[:4])
    np.savez(tmp_path / "inputs.npz", inputs=x[:4])
    local = load_model(model_path).predict(x[:4])
    for inputs in ("inputs.npy", "inputs.npz"):
        predicted = cli(embedded_service, "predict", job_id, str(tmp_path / inputs), "--json")
        assert predicted.exit_code == 0, predicted.output
        assert json.loads(predicted.stdout)["predictions"] == [int(c) for c in np.ravel(local)], inputs
    table = cli(embedded_service, "predict", job_id, str(tmp_path / "inputs.npy")).stdout.splitlines()
    assert table[0].split() == ["SAMPLE", "CLASS", "PROBABILITY"] and len(table) == 5

    rerun = cli(embedded_service, "rerun", job_id, "--follow", "--json")
    assert rerun.exit_code == 0, rerun.output
    again = json.loads(rerun.stdout)
    assert again["rerun_of"] == job_id and again["status"] == JobStatus.SUCCEEDED
    deleted = cli(embedded_service, "delete", again["id"])
    assert deleted.exit_code == 0, deleted.output
    gone = cli(embedded_service, "show", again["id"])
    assert gone.exit_code == 2 and "404" in gone.stderr


def test_datasets_upload_list_and_delete_refused_while_a_job_trains_on_it(embedded_service, make_spec, tmp_path):
    x, y = Digits().load()
    path = tmp_path / "digits.npz"
    np.savez(path, x=x[:300].astype(np.float32), y=y[:300])
    uploaded = cli(embedded_service, "datasets", "upload", str(path), "--name", "cli-digits")
    assert uploaded.exit_code == 0, uploaded.output
    dataset_id = uploaded.stdout.strip()
    assert "300 samples of 1x8x8, 10 classes" in uploaded.stderr
    assert cli(embedded_service, "datasets", "upload", str(path)).stdout.strip() == dataset_id  # same bytes
    listed = json.loads(cli(embedded_service, "datasets", "list", "--json").stdout)
    assert dataset_id in [d["id"] for d in listed]
    assert dataset_id in cli(embedded_service, "datasets", "list").stdout

    spec = long_spec(make_spec, "cli-on-dataset")
    spec["dataset"] = {"type": "npz", "dataset_id": dataset_id}
    submitted = cli(embedded_service, "submit", write_spec(tmp_path, spec))
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    try:
        refused = cli(embedded_service, "datasets", "delete", dataset_id)
        assert refused.exit_code == 2, refused.output
        assert "409 Dataset in use" in refused.stderr and job_id in refused.stderr
    finally:
        embedded_service.client().cancel(job_id)
    assert embedded_service.client().wait(job_id, timeout=60)["status"] == JobStatus.CANCELLED
    deleted = cli(embedded_service, "datasets", "delete", dataset_id)
    assert deleted.exit_code == 0, deleted.output
    assert dataset_id not in cli(embedded_service, "datasets", "list").stdout


# ---------------------------------------------------------------------------- exit code 1


def test_a_failed_job_followed_exits_1_with_its_diagnostic_printed(embedded_service, make_spec, tmp_path):
    spec = make_spec("cli-diverges", epochs=5)
    spec["optimizer"] = {"type": "sgd", "lr": 1e6}
    result = cli(embedded_service, "submit", write_spec(tmp_path, spec), "--follow")
    assert result.exit_code == 1, result.output
    assert "error nan_loss at iteration" in result.stderr  # printed as it happened
    assert "failed: nan_loss:" in result.stderr


def test_a_cancelled_job_followed_exits_1(embedded_service, make_spec, tmp_path):
    client = embedded_service.client()
    job_id = client.submit(long_spec(make_spec, "cli-cancelled"))["id"]
    wait_running(client, job_id)
    cancelled = cli(embedded_service, "cancel", job_id)
    assert cancelled.exit_code == 0 and cancelled.stdout.split()[2] in ("cancelling", "cancelled")
    followed = cli(embedded_service, "follow", job_id)
    assert followed.exit_code == 1, followed.output
    assert f"job {job_id} cancelled" in followed.stderr


# ---------------------------------------------------------------------------- exit code 2


def test_a_refused_spec_exits_2_with_the_problem_and_each_field_on_stderr(embedded_service, make_spec, tmp_path):
    spec = make_spec("cli-bad")
    spec["model"]["layers"][1] = {"type": "affine", "units": -3}
    spec["optimizer"] = {"type": "no-such-optimizer"}
    result = cli(embedded_service, "submit", write_spec(tmp_path, spec))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: 422 ")
    fields = [line.split(":")[0].strip() for line in lines[1:]]
    assert "model.layers[1].units" in fields and any(f.startswith("optimizer") for f in fields), result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "status"), [
    (("show", "0" * 32), "404"),
    (("cancel", "0" * 32), "404"),
    (("jobs", "--status", "sleeping"), "400"),
])
def test_each_4xx_exits_2_and_names_what_was_wrong(embedded_service, args, status):
    result = cli(embedded_service, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {status} ")
    if status == "400":
        assert "  status: " in result.stderr  # the field error


def test_an_unknown_token_exits_2_and_says_where_the_token_came_from(embedded_service):
    result = cli(embedded_service, "jobs", token="dlj_not-a-token")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: 401 ") and "DLJOBS_TOKEN" in result.stderr


def test_usage_errors_exit_2_before_any_request(embedded_service, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    for args, words in ((("submit",), "Missing argument 'SPEC'"),
                        (("submit", str(broken)), "broken.json: not valid JSON"),
                        (("jobs", "--limit", "0"), "--limit"),
                        (("show", "../datasets/x"), "is not an id"),  # it would ask another URL
                        (("datasets", "delete", "a b"), "is not an id"),
                        (("download", "x", "-o", str(tmp_path / "no" / "m.npz")), "its folder does not exist"),
                        (("predict", "x", str(tmp_path / "objects.npy")), "pickled")):
        result = cli(embedded_service, *args, url=f"http://127.0.0.1:{free_port()}")  # nothing listens
        assert result.exit_code == 2, (args, result.output)
        assert words in result.stderr, (args, result.stderr)
    wrong_url = cli(embedded_service, "jobs", url="127.0.0.1:8000")  # no scheme
    assert wrong_url.exit_code == 2 and "not a service URL" in wrong_url.stderr, wrong_url.output


# ---------------------------------------------------------------------------- exit code 3


def test_no_service_exits_3(embedded_service):
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(embedded_service, "jobs", url=url)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith(f"error: cannot reach the dljobs service at {url}")


def test_a_5xx_exits_3(embedded_service, tmp_path):
    """The front door in front of an API server that is down answers 502 to everything."""
    port = free_port()
    door = subprocess.Popen([sys.executable, "-m", "dljobs.frontdoor", "--host", "127.0.0.1",
                             "--port", str(port), "--upstream", f"127.0.0.1:{free_port()}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        result = cli(embedded_service, "jobs", url=url)
        while result.exit_code == 3 and "cannot reach" in result.stderr and time.monotonic() < deadline:
            time.sleep(0.2)  # the front door is still starting
            result = cli(embedded_service, "jobs", url=url)
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith("error: 502 Bad Gateway"), result.stderr
    finally:
        door.terminate()
        door.wait(timeout=10)


# ---------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_stops_following_and_the_job_keeps_running(embedded_service, make_spec):
    client = embedded_service.client()
    job_id = client.submit(long_spec(make_spec, "cli-ctrl-c"))["id"]
    try:
        wait_running(client, job_id)
        follower = subprocess.Popen([DLJOBS, "follow", job_id], env=env_of(embedded_service),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = ""
        while "%|" not in seen:  # the bar is drawn
            char = follower.stderr.read(1)
            # it ended before drawing the bar
            assert char, seen + follower.stderr.read() + embedded_service.procs.logs()
            seen += char
        follower.send_signal(signal.SIGINT)
        _, rest = follower.communicate(timeout=30)
        assert follower.returncode == 130, seen + rest
        assert f"stopped following; job {job_id} keeps running" in rest
        assert client.get(job_id)["status"] == JobStatus.RUNNING
    finally:
        client.cancel(job_id)
    assert client.wait(job_id, timeout=60)["status"] == JobStatus.CANCELLED


# ---------------------------------------------------------------------------- dljobs up


def test_up_printed_one_short_banner_and_no_worker_noise(embedded_service):
    log = (embedded_service.procs.folder / "up.log").read_text()
    lines = log.splitlines()
    port = embedded_service.base_url.rsplit(":", 1)[1]
    assert lines[0] == f"dljobs up: http://127.0.0.1:{port}/?token={embedded_service.token}  (this URL logs a browser in)"
    assert lines[1].split()[:2] == ["data", str(Path(embedded_service.procs.env["DLJOBS_DATA_DIR"]).resolve())]
    assert lines[2].split()[:2] == ["workers", "2,"]
    assert sorted(line for line in lines if line.endswith(" ready.")) == [
        f"dljobs up: worker1@{os.uname().nodename} ready.", f"dljobs up: worker2@{os.uname().nodename} ready."]
    assert "[config]" not in log and "gunicorn" not in log.lower()  # Celery's banner, gunicorn's lines
    logs = Path(embedded_service.procs.env["DLJOBS_DATA_DIR"]) / "logs"
    assert "[config]" in (logs / "worker1.log").read_text()  # where they went instead


def test_up_on_a_port_in_use_says_so_in_one_line_and_exits_non_zero(embedded_service, tmp_path):
    port = embedded_service.base_url.rsplit(":", 1)[1]
    second = subprocess.Popen([DLJOBS, "up", "--port", port, "--data-dir", str(tmp_path / "data")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # it started: stop it as a person would, then fail
        second.send_signal(signal.SIGINT)
        stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 1, stderr
    assert stdout == ""
    assert stderr.splitlines() == [
        (f"dljobs up: port {port} on 127.0.0.1 is already in use (another dljobs up?); "
        "stop it or choose another port with --port")]
    assert not (tmp_path / "data").exists()  # nothing was started or written


def test_no_active_job_is_left_behind(embedded_service):
    """Runs last in this file: every long job the tests started was cancelled."""
    active = [j for j in embedded_service.client().iter_jobs() if j["status"] in ACTIVE]
    assert active == []
