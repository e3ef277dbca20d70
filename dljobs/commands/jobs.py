"""The job commands: ``submit``, ``jobs``, ``show``, ``follow``, ``cancel``, ``rerun``,
``delete``, ``download`` and ``predict``, over HTTP on :class:`dljobs.client.Client`.

Tables for people, ``--json`` for scripts; exit codes as :mod:`dljobs.commands.remote` says.
"""

from __future__ import annotations

from pathlib import Path

import click

from dljobs.commands.follow import follow_or_leave, summary_lines
from dljobs.commands.remote import (
    ID,
    ServiceCommand,
    age,
    echo_json,
    percent,
    read_spec,
    service_options,
    table,
)
from dljobs.lifecycle import has_model


def _finish(client, job: dict, as_json: bool) -> None:
    if as_json:
        echo_json(job)
    else:
        click.echo("\n".join(summary_lines(client, job)))


@click.command("submit", cls=ServiceCommand)
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--name", default=None, help="The job's name (instead of the spec's).")
@click.option("-f", "--follow", is_flag=True, help="Follow it to the end (exit 1 if it fails).")
@click.option("--json", "as_json", is_flag=True, help="Print the job answer as JSON.")
@service_options
def submit(client, spec_path: str, name: str | None, follow: bool, as_json: bool) -> None:
    """Submit the job spec in the file SPEC (``-``: stdin); prints its id."""
    spec = read_spec(spec_path)
    if name is not None:
        spec["name"] = name
    job = client.submit(spec)
    if not follow:
        if as_json:
            echo_json(job)
        else:
            click.echo(job["id"])
        return
    click.echo(f"submitted job {job['id']}" + (f" ({job['name']})" if job.get("name") else ""), err=True)
    _finish(client, follow_or_leave(client, job["id"]), as_json)


@click.command("follow", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print the finished job as JSON.")
@service_options
def follow(client, job_id: str, as_json: bool) -> None:
    """Watch job ID to its end: a progress bar, diagnostics as they happen, the final metrics.

    Ctrl-C stops watching (exit 130); the job keeps running.
    """
    _finish(client, follow_or_leave(client, job_id), as_json)


@click.command("jobs", cls=ServiceCommand)
@click.option("--status", "statuses", multiple=True,
              help="Only jobs in this status (repeat it, or give a comma list: queued,running).")
@click.option("--name", default=None, help="Only jobs whose name starts with this.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="How many jobs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@service_options
def jobs(client, statuses: tuple[str, ...], name: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs: id, name, status, progress, validation accuracy, age."""
    status = ",".join(statuses) or None
    found = []
    for job in client.iter_jobs(status=status, name=name, page_size=min(limit, 100)):
        found.append(job)
        if len(found) == limit:
            break
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no jobs", err=True)
        return
    rows = [(j["id"], j.get("name") or "", j["status"], f"{j['progress'].get('percent') or 0:.0f}%",
             percent(j["metrics"].get("val_accuracy")), age(j.get("created_at"))) for j in found]
    click.echo(table(("ID", "NAME", "STATUS", "PROGRESS", "VAL ACC", "AGE"), rows, right=(3, 4, 5)))


@click.command("show", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print the job answer as JSON.")
@service_options
def show(client, job_id: str, as_json: bool) -> None:
    """One job: status, progress, metrics, diagnostics, error, and where its model is."""
    job = client.get(job_id)
    if as_json:
        echo_json(job)
        return
    p, m = job["progress"], job["metrics"]
    rows = [("id", job["id"]), ("name", job.get("name") or ""), ("status", job["status"]),
            ("attempt", job.get("attempt"))]
    if job.get("queue_position"):
        rows.append(("queue position", job["queue_position"]))
    if job.get("worker"):
        rows.append(("worker", f"{job['worker']['host']} (pid {job['worker'].get('pid')})"))
    if p.get("iterations"):
        where = (f"{p.get('percent') or 0:.0f}%  iteration {p.get('iteration')}/{p.get('iterations')}"
                 f"  epoch {float(p.get('epoch') or 0):.1f}/{p.get('epochs')}")
        rows.append(("progress", where))
    rows += [(key.replace("_", " "), f"{float(m[key]):.4f}") for key in
             ("train_loss", "train_accuracy", "val_loss", "val_accuracy") if m.get(key) is not None]
    if job.get("rerun_of"):
        rows.append(("rerun of", job["rerun_of"]))
    if job.get("stop_reason"):
        rows.append(("stopped", f"{job['stop_reason']} (epoch {job.get('stopped_epoch')})"))
    rows += [("created", job.get("created_at")), ("started", job.get("started_at") or ""),
             ("finished", job.get("finished_at") or "")]
    if job.get("error"):
        rows.append(("error", f"{job['error']['code']}: {job['error']['message']}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    for d in job.get("diagnostics") or []:
        lines.append(f"{'diagnostic':<{width}}  {d['severity']} {d['code']} at iteration "
                     f"{d.get('iteration')}: {d['message']}")
    if has_model(job["status"], job.get("stop_reason"), job.get("stopped_epoch")):
        lines.append(f"{'model':<{width}}  {client.api_url}/jobs/{job['id']}/model")
    click.echo("\n".join(lines))


@click.command("cancel", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@service_options
def cancel(client, job_id: str) -> None:
    """Ask job ID to stop (a running job stops at its next iteration)."""
    job = client.cancel(job_id)
    click.echo(f"job {job['id']} {job['status']}")


@click.command("rerun", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@click.option("-f", "--follow", is_flag=True, help="Follow the new job to its end.")
@click.option("--json", "as_json", is_flag=True, help="Print the new job answer as JSON.")
@service_options
def rerun(client, job_id: str, follow: bool, as_json: bool) -> None:
    """Submit job ID's spec again as a new job; prints the new job's id."""
    job = client.rerun(job_id)
    if follow:
        click.echo(f"submitted job {job['id']} (rerun of {job_id})", err=True)
        _finish(client, follow_or_leave(client, job["id"]), as_json)
    elif as_json:
        echo_json(job)
    else:
        click.echo(job["id"])


@click.command("delete", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@service_options
def delete(client, job_id: str) -> None:
    """Delete finished job ID, its metrics and its model."""
    client.delete(job_id)
    click.echo(f"job {job_id} deleted")


def _writable(path: Path) -> Path:
    target = path.expanduser()
    if target.is_dir():
        raise click.BadParameter(f"{path} is a directory", param_hint="-o")
    if not target.parent.is_dir():
        raise click.BadParameter(f"{path}: its folder does not exist", param_hint="-o")
    return target


@click.command("download", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Where to save the model (default ./<ID>.npz).")
@service_options
def download(client, job_id: str, output: Path | None) -> None:
    """Save job ID's trained model (.npz: weights, preprocessing and spec)."""
    target = _writable(output or Path(f"{job_id}.npz"))
    data = client.download_model(job_id)
    target.write_bytes(data)
    click.echo(f"model saved to {target} ({len(data)} bytes); "
               "dlcore.loading.load_model(path).predict(x) runs it", err=True)
    click.echo(str(target))


def _read_inputs(path: Path):
    """The array in an ``.npy``, or the ``inputs`` (else ``x``, else only) array of an ``.npz``."""
    # deferred: NumPy loads only for predict
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        message = "holds pickled objects, which are refused" if "pickle" in str(exc).lower() else str(exc)
        raise click.BadParameter(f"{path}: not a readable .npy or .npz ({message})",
                                 param_hint="FILE") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.files)
        key = next((k for k in ("inputs", "x") if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise click.BadParameter(f"{path}: name the array 'inputs' (numpy.savez(file, inputs=x)); "
                                     f"it holds {', '.join(keys) or 'none'}", param_hint="FILE")
        return loaded[key]


@click.command("predict", cls=ServiceCommand)
@click.argument("job_id", metavar="ID", type=ID)
@click.argument("inputs_path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print predictions and probabilities as JSON.")
@service_options
def predict(client, job_id: str, inputs_path: Path, as_json: bool) -> None:
    """Classes for the samples in FILE (.npy, or .npz with an 'inputs' array) by job ID's model."""
    answer = client.predict(job_id, _read_inputs(inputs_path))
    if as_json:
        echo_json(answer)
        return
    rows = [(i, cls, f"{max(probs):.4f}")
            for i, (cls, probs) in enumerate(zip(answer["predictions"], answer["probabilities"]))]
    click.echo(table(("SAMPLE", "CLASS", "PROBABILITY"), rows, right=(0, 1, 2)))


#: Every job command, for ``dljobs.cli`` to register.
COMMANDS = (submit, jobs, show, follow, cancel, rerun, delete, download, predict)
