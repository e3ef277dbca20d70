"""``dljobs datasets upload|list|delete``: the service's uploaded ``.npz`` data sets."""

from __future__ import annotations

from pathlib import Path

import click

from dljobs.commands.remote import ID, ServiceGroup, age, echo_json, service_options, table


@click.group("datasets", cls=ServiceGroup)
def datasets() -> None:
    """Uploaded datasets (.npz with arrays x and y) that job specs name by dataset_id."""


@datasets.command("upload")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="The dataset's name (default: the file's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the dataset answer as JSON.")
@service_options
def upload(client, path: Path, name: str | None, as_json: bool) -> None:
    """Upload FILE; prints the dataset id (the same bytes again give the stored dataset)."""
    found = client.upload_dataset(path, name=name)
    if as_json:
        echo_json(found)
        return
    shape = "x".join(str(d) for d in found["sample_shape"])
    click.echo(f"dataset {found['id']}: {found['n_samples']} samples of {shape}, "
               f"{found['num_classes']} classes", err=True)
    click.echo(found["id"])


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the datasets as JSON.")
@service_options
def list_datasets(client, as_json: bool) -> None:
    """The datasets this token sees."""
    found = client.datasets()
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no datasets", err=True)
        return
    rows = [(d["id"], d.get("name") or "", "x".join(map(str, d["sample_shape"])), d["num_classes"],
             d["n_samples"], d["size_bytes"], age(d.get("created_at"))) for d in found]
    click.echo(table(("ID", "NAME", "SAMPLE", "CLASSES", "SAMPLES", "BYTES", "AGE"), rows,
                     right=(3, 4, 5, 6)))


@datasets.command("delete")
@click.argument("dataset_id", metavar="ID", type=ID)
@service_options
def delete_dataset(client, dataset_id: str) -> None:
    """Delete dataset ID (refused, exit 2, while a queued or running job trains on it)."""
    client.delete_dataset(dataset_id)
    click.echo(f"dataset {dataset_id} deleted")
