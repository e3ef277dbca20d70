"""``dljobs train`` and ``dljobs validate``: run a job spec on this machine, no server needed."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click


def _load_spec(path: str) -> tuple[dict, str | None]:
    """``(spec, warm_start)`` of the file ``path``, relative file paths resolved against its folder.

    ``warm_start`` is the model path a spec file written before it left dlcore names in
    ``training.warm_start`` (``dljobs.specs.offline_spec`` takes the service's fields out).
    """
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dlcore.errors import ConfigError, SpecError
    from dljobs.specs import offline_spec

    try:
        spec = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError([ConfigError(TOP, f"not valid JSON: {exc}")]) from None
    except RecursionError:
        raise SpecError([ConfigError(TOP, "JSON nested too deeply")]) from None
    return offline_spec(resolve_relative_paths(spec, Path(path).resolve().parent))


def resolve_relative_paths(spec, base: Path):
    """``dataset.path`` and ``training.warm_start`` made absolute against ``base`` when relative.

    A spec names its data and warm-start model relative to where the spec lives, so
    ``dljobs train some/dir/spec.json`` works from any directory. Anything else is left alone
    for validation to judge.
    """
    if not isinstance(spec, dict):
        return spec
    for section, key in (("dataset", "path"), ("training", "warm_start")):
        entry = spec.get(section)
        if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key]:
            path = Path(entry[key]).expanduser()
            if not path.is_absolute():
                spec[section] = {**entry, key: str(base / path)}
    return spec


#: The field of a problem with the document as a whole (dlcore names it as the API's request ``body``).
TOP = "body"


def _exit_invalid(exc, as_json: bool, spec_path: str) -> NoReturn:
    """Every error of a ``SpecError``, then exit 2; with ``--json`` they also end stdout as one JSON line.

    A problem with the file as a whole (``body`` over HTTP, where the request is the
    spec) is named by the file's path, as the user typed it: ``broken.json: not valid JSON``.
    """
    errors = [(spec_path if e.field in (TOP, "") else e.field, e.message) for e in exc.errors]
    for field, message in errors:
        click.echo(f"error: {field}: {message}", err=as_json)
    if as_json:
        click.echo(json.dumps({"errors": [{"field": field, "message": message} for field, message in errors]}))
    sys.exit(2)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _table_rows(layers: list[dict], prefix: str = "", depth: int = 0) -> list[tuple[str, ...]]:
    """One text row per layer, a block's inner layers indented under it (``3.1``, ``4.b2.0``)."""
    rows = []
    for layer in layers:
        index = f"{prefix}{layer['index']}"
        name = layer["type"] + (f" ({layer['shortcut']})" if "shortcut" in layer else "")
        rows.append(
            (
                index,
                "  " * depth + name,
                "x".join(map(str, layer["output_shape"])),
                _fmt_int(layer["params"]),
                _fmt_int(layer["flops"]),
            )
        )
        rows += _table_rows(layer.get("layers", []), f"{index}.", depth + 1)
        for b, branch in enumerate(layer.get("branches", [])):
            rows += _table_rows(branch, f"{index}.b{b}.", depth + 1)
    return rows


def shape_table(summary: dict) -> str:
    """The model table of ``dlcore.spec.infer`` as aligned text: layer, output shape, params, FLOPs.

    A block's inner layers are listed indented under it; their params and FLOPs are part of
    the block's, so the total adds the top-level rows only.
    """
    rows = [("#", "layer", "output shape", "params", "FLOPs")]
    rows.append(("", "input", "x".join(map(str, summary["input_shape"])), "", ""))
    rows += _table_rows(summary["layers"])
    rows.append(("", "total", "", _fmt_int(summary["total_params"]), _fmt_int(summary["total_flops"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]), r[3].rjust(widths[3]), r[4].rjust(widths[4])]
        lines.append("  ".join(cells).rstrip())
    rule = "-" * max(len(line) for line in lines)
    lines = [lines[0], rule, *lines[1:-1], rule, lines[-1]]
    lines.append(f"classes: {summary['num_classes']}   FLOPs are per sample (forward; a multiply-add counts 2)")
    lines.append(f"forward activations for one batch: {summary['memory_bytes'] / 2**20:.2f} MiB")
    return "\n".join(lines)


@click.command("validate")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the inferred model table as JSON.")
def validate_cmd(spec_path: str, as_json: bool) -> None:
    """Check SPEC without loading data: print the shape table, or every error (exit 2)."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dlcore.errors import SpecError
    from dlcore.spec import infer

    try:
        summary = infer(_load_spec(spec_path)[0])
    except SpecError as exc:
        _exit_invalid(exc, as_json, spec_path)
    click.echo(json.dumps(summary) if as_json else shape_table(summary))


class _Progress:
    """A tqdm bar on stderr fed by the trainer's callbacks; diagnostics printed above it."""

    def __init__(self, checkpoint_path: str | None, quiet: bool):
        self.bar = None
        self.checkpoint_path = checkpoint_path
        self.quiet = quiet
        self.last_val = None

    def on_start(self, trainer) -> None:
        # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
        from tqdm import tqdm

        self.bar = tqdm(
            total=trainer.total_iterations,
            initial=trainer.iteration,
            file=sys.stderr,
            unit="it",
            dynamic_ncols=True,
            disable=self.quiet,
            desc=trainer.spec["name"],
        )

    def on_iteration(self, trainer, info) -> None:
        self.bar.update(1)
        if info.iteration % 10 == 0 or info.iteration == info.iterations:
            post = {"epoch": f"{info.epoch:.2f}/{info.epochs}", "loss": f"{info.loss:.4f}"}
            if self.last_val is not None:
                post["val_acc"] = f"{self.last_val:.3f}"
            self.bar.set_postfix(post, refresh=False)

    def on_epoch(self, trainer, info) -> None:
        self.last_val = info.val_accuracy
        self.bar.write(
            f"epoch {info.epoch}/{info.epochs}: train loss {info.train_loss:.4f} acc {info.train_accuracy:.3f}"
            f" | val loss {info.val_loss:.4f} acc {info.val_accuracy:.3f} ({info.seconds:.1f}s)",
            file=sys.stderr,
        )

    def on_event(self, trainer, event) -> None:
        self.bar.write(f"[{event.severity}] {event.code}: {event.message}", file=sys.stderr)

    def on_checkpoint(self, trainer, data: bytes, iteration: int) -> None:
        if self.checkpoint_path:
            Path(self.checkpoint_path).write_bytes(data)

    def on_end(self, trainer, result) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_writable(option: str, path: str | None) -> None:
    """Fail before training, not after it, when ``path`` cannot be written (missing folder, a directory)."""
    if path is None:
        return
    target = Path(path)
    folder = target.parent
    if target.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        why = "is a directory" if target.is_dir() else f"folder {folder} does not exist" if not folder.is_dir() else "is not writable"
        raise click.BadParameter(f"cannot write {path}: {why}", param_hint=option)


@click.command("train")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as one JSON object on the last stdout line.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="Save the trained model (.npz).")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False), default=None,
              help="Keep the latest checkpoint in this file (written at the spec's cadence and on Ctrl-C).")
@click.option("--resume", "resume_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Continue from a checkpoint file.")
@click.option("--warm-start", "warm_start_path", type=click.Path(dir_okay=False), default=None,
              help="Start from a saved model's weights (.npz from --out; same layer shapes).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(spec_path: str, as_json: bool, out_path: str | None, checkpoint_path: str | None,
              resume_path: str | None, warm_start_path: str | None, quiet: bool) -> None:
    """Train SPEC on this machine with a progress bar (stderr); Ctrl-C or SIGTERM stops cleanly with a checkpoint."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dlcore.errors import SpecError
    from dlcore.model import read_npz
    from dlcore.training import Trainer, TrainingFailed

    for option, target in (("--out", out_path), ("--checkpoint", checkpoint_path)):
        _check_writable(option, target)
    progress = _Progress(checkpoint_path, quiet)
    try:
        spec, spec_warm_start = _load_spec(spec_path)
    except SpecError as exc:
        _exit_invalid(exc, as_json, spec_path)
    warm_start = None
    warm_start_path = warm_start_path or spec_warm_start
    if warm_start_path:
        try:
            warm_start = read_npz(Path(warm_start_path).read_bytes())
        except (OSError, ValueError) as exc:
            click.echo(f"error: --warm-start: cannot read a saved model from {warm_start_path}: {exc}", err=True)
            sys.exit(2)
    try:
        trainer = Trainer(spec, callbacks=[progress], warm_start=warm_start)
    except SpecError as exc:
        _exit_invalid(exc, as_json, spec_path)

    def on_signal(signum, frame):
        trainer.request_stop("interrupted" if signum == signal.SIGINT else "terminated")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        resume = Path(resume_path).read_bytes() if resume_path else None
        result = trainer.run(resume)
    except TrainingFailed as exc:
        progress.close()
        click.echo(f"training failed ({exc.code}): {exc.message}", err=True)
        if as_json:
            click.echo(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
        sys.exit(1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if out_path:
        try:
            result.model.save(out_path)
        except OSError as exc:
            click.echo(f"error: --out: cannot save the model to {out_path}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        click.echo(f"model saved to {out_path}", err=True)
    m = result.metrics
    if result.stopped:
        click.echo(f"stopped: {result.stop_reason}", err=True)
    click.echo(
        f"val_accuracy {m['val_accuracy']:.4f}  train_accuracy {m['train_accuracy']:.4f}  val_loss {m['val_loss']:.4f}"
        f"  epochs {m['epochs']}  {m['seconds']:.1f}s",
        err=as_json,
    )
    if as_json:
        click.echo(json.dumps({**m, "stopped": result.stopped, "stop_reason": result.stop_reason,
                               "events": [e["code"] for e in result.events]}))
