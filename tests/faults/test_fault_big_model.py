"""Fault 6 (its last part): a model near the parameter limit checkpoints, resumes and downloads on
PostgreSQL, with the downloaded bytes those of the trained model.

94 million parameters (dlcore's limit, ``MAX_PARAMS``, is 100 million): its checkpoint and its
model are about 360 MiB each, dozens of chunks.  The first attempt stops dead (SystemExit, as a
worker shutting down) right after its first checkpoint is stored; the second resumes from that
checkpoint (read back from the database into a spooled file) and finishes; the API streams the
model back.
"""

from __future__ import annotations

import hashlib
import tempfile

import pytest

from api import create_app
from dlcore.model import write_npz
from dlcore.spec.sections import MAX_PARAMS
from dlcore.training import Callback, train
from dljobs import artifacts, jobstore, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.runner import run_job
from dljobs.settings import Settings
from dljobs.specs import prepare_job_request
from tests.conftest import require_service

MIB = 2**20
WIDTH = 9_700  # 2 -> 9,700 -> 9,700 -> 3: 94,157,903 parameters
SPEC = {
    "name": "near the parameter limit",
    # 30 points: one iteration per epoch, so the time goes to storing, not to training
    "dataset": {"type": "spiral", "points_per_class": 10},
    "model": {"layers": [{"type": "affine", "units": WIDTH}, {"type": "relu"},
                         {"type": "affine", "units": WIDTH}, {"type": "relu"},
                         {"type": "affine", "units": 3}]},
    "optimizer": {"type": "sgd", "lr": 0.001},
    "training": {"epochs": 2, "batch_size": 32, "dtype": "float32", "checkpoint_every": 1},
}


class StopsAfterFirstCheckpoint(Callback):
    """Runs after the job's reporter (which stores each checkpoint at once here): the worker dies."""

    def on_checkpoint(self, trainer, checkpoint, iteration):
        raise SystemExit("worker stopped after its first checkpoint")


def model_digest(model) -> tuple[str, int]:
    """sha256 and size of the model's .npz, written to a temporary file (not held as bytes)."""
    with tempfile.TemporaryFile() as file:
        write_npz(model.arrays(), compress=False, file=file)  # as the runner stores it
        size = file.tell()
        file.seek(0)
        digest = hashlib.sha256()
        while piece := file.read(artifacts.CHUNK_BYTES):
            digest.update(piece)
    return digest.hexdigest(), size


def download(app, path):
    """The one HTTP call of this module, as an admin."""
    return testsupport.admin_test_client(app).get(path, buffered=False)


@pytest.mark.fault
@pytest.mark.service
@pytest.mark.slow
def test_a_model_near_the_parameter_limit_checkpoints_resumes_and_downloads_on_postgresql(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        upgrade(url)
        settings = Settings(data_dir=tmp_path, database_url=url, checkpoint_interval_s=0)
        factory = session_factory(settings)
        with factory() as session:
            prepared = prepare_job_request(session, SPEC, settings=settings)  # within every limit
            assert 0.9 * MAX_PARAMS < prepared.summary["total_params"] <= MAX_PARAMS
            job_id = jobstore.create_job(session, prepared.spec, prepared.summary).id

        def first_attempt(spec, callbacks=(), **inputs):
            return train(spec, callbacks=[*callbacks, StopsAfterFirstCheckpoint()], **inputs)

        with pytest.raises(SystemExit):
            run_job(job_id, settings, host="first", pid=1, train=first_attempt)
        with factory() as session:
            checkpoint = artifacts.latest_checkpoint(session, job_id)
            assert checkpoint is not None and checkpoint.iteration == 1
            assert checkpoint.size_bytes > 300 * MIB
            assert session.get(Job, job_id).heartbeat_at is None  # handed back, claimable at once

        seen = {}

        def second_attempt(spec, callbacks=(), resume_from=None, **inputs):
            seen["resumed"] = resume_from is not None
            result = train(spec, callbacks=callbacks, resume_from=resume_from, **inputs)
            seen["model"] = model_digest(result.model)
            return result

        assert run_job(job_id, settings, host="second", pid=2, train=second_attempt) == "succeeded"
        assert seen["resumed"]
        with factory() as session:
            job = session.get(Job, job_id)
            stored = artifacts.model_artifact(session, job_id)
            assert job.attempt == 2 and job.progress["iteration"] == 2
            assert [c.iteration for c in artifacts.checkpoints(session, job_id)] == [2, 1]
        sha, size = seen["model"]
        assert (stored.sha256, stored.size_bytes) == (sha, size)

        app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                          "DLJOBS_ENQUEUE": lambda job_id: None, "DLJOBS_BROKER_CHECK": lambda: None})
        answer = download(app, f"/api/v1/jobs/{job_id}/model")
        assert answer.status_code == 200 and int(answer.headers["Content-Length"]) == size
        digest, received = hashlib.sha256(), 0
        for piece in answer.response:
            digest.update(piece)
            received += len(piece)
        answer.close()
        assert (digest.hexdigest(), received) == (sha, size)
