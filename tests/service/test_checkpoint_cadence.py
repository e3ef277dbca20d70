"""A job packs a checkpoint only when it will store it, and still resumes bit for bit.

Real dlcore training through ``run_job`` (no Celery): the trainer asks the job's
reporter (``wants_checkpoint``) before it packs; the reporter says yes at most every
``DLJOBS_CHECKPOINT_INTERVAL_S``, when the run stops, and at its end.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.model import read_npz
from dlcore.training import Callback, Trainer, train
from dlcore.training.checkpoint import unpack_checkpoint
from dljobs import artifacts, jobstore
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.runner import run_job
from dljobs.settings import Settings

EPOCHS = 6
SPEC = {
    "name": "cadence",
    "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
    "model": {"layers": [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]},
    "optimizer": {"type": "momentum", "lr": 0.02, "momentum": 0.9},
    "training": {"epochs": EPOCHS, "batch_size": 64, "seed": 3},
}


def make_settings(tmp_path, **overrides) -> Settings:
    settings = Settings(data_dir=tmp_path, **overrides)
    upgrade(settings.effective_database_url)
    return settings


def new_job(settings) -> str:
    with session_factory(settings)() as session:
        return jobstore.create_job(session, SPEC, None).id


@pytest.fixture
def packs_and_stores(monkeypatch):
    """Count the checkpoints the trainer packs and the ones the job stores (their iterations)."""
    packed, stored = [], []
    pack, write = Trainer.checkpoint, artifacts.write_artifact

    def counting_pack(self, *args, **kwargs):
        packed.append(self.iteration)
        return pack(self, *args, **kwargs)

    def counting_write(factory, job_id, attempt, kind, iteration, source, **kwargs):
        if kind == artifacts.CHECKPOINT:
            stored.append(iteration)
        return write(factory, job_id, attempt, kind, iteration, source, **kwargs)

    monkeypatch.setattr(Trainer, "checkpoint", counting_pack)
    monkeypatch.setattr(artifacts, "write_artifact", counting_write)
    return packed, stored


def test_a_short_job_packs_one_checkpoint_at_its_end(tmp_path, packs_and_stores):
    packed, stored = packs_and_stores
    settings = make_settings(tmp_path, checkpoint_interval_s=3600)
    job_id = new_job(settings)
    assert run_job(job_id, settings) == "succeeded"
    with session_factory(settings)() as session:
        last = session.get(Job, job_id).progress["iteration"]
        checkpoint = artifacts.latest_checkpoint(session, job_id)
        iteration, (_, meta) = checkpoint.iteration, unpack_checkpoint(artifacts.read_bytes(session, checkpoint))
    assert packed == [last] and stored == [last]  # the end only: not one per epoch
    assert iteration == last and meta["epoch"] == EPOCHS


def test_every_packed_checkpoint_is_stored_at_the_interval(tmp_path, packs_and_stores):
    packed, stored = packs_and_stores
    settings = make_settings(tmp_path, checkpoint_interval_s=0)  # due at every checkpoint point
    job_id = new_job(settings)
    assert run_job(job_id, settings) == "succeeded"
    per_epoch = packed[0]
    assert packed == [per_epoch * e for e in range(1, EPOCHS + 1)]  # the spec's cadence: each epoch end
    assert stored == packed  # none packed in vain


class InterruptAt(Callback):
    """Raises KeyboardInterrupt (a worker shutting down) in the middle of an iteration."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_iteration(self, trainer, info) -> None:
        if info.iteration == self.iteration:
            raise KeyboardInterrupt


def test_an_interrupted_job_resumes_from_its_stored_checkpoint_bit_for_bit(tmp_path):
    settings = make_settings(tmp_path, checkpoint_interval_s=0)
    whole = new_job(settings)
    assert run_job(whole, settings) == "succeeded"

    job_id = new_job(settings)
    with session_factory(settings)() as session:
        per_epoch = session.get(Job, whole).progress["iterations"] // EPOCHS
    stop_at = 3 * per_epoch + per_epoch // 2  # in the middle of the 4th epoch

    def interrupted(spec, callbacks=(), **kwargs):
        return train(spec, callbacks=[*callbacks, InterruptAt(stop_at)], **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run_job(job_id, settings, train=interrupted)
    with session_factory(settings)() as session:
        assert artifacts.latest_checkpoint(session, job_id).iteration == 3 * per_epoch
    assert run_job(job_id, settings) == "succeeded"

    with session_factory(settings)() as session:
        assert session.get(Job, job_id).attempt == 2
        a = read_npz(artifacts.read_bytes(session, artifacts.model_artifact(session, whole)))
        b = read_npz(artifacts.read_bytes(session, artifacts.model_artifact(session, job_id)))
    params = [k for k in a if k.startswith("param/")]
    assert params and sorted(a) == sorted(b)
    for key in params:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
