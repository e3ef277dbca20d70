"""The fixed sections of a job spec: training, diagnostics and the dataset's common keys.

Component sections (``optimizer``, ``loss``, ...) are validated by each
component's own ``Config``; these schemas hold what belongs to the job itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dlcore.config import Config
from dlcore.initializers import DEFAULT_INITIALIZER

SPEC_VERSION = 1

#: Top-level keys of a spec, in the order the normalized spec lists them.
TOP_LEVEL_KEYS = (
    "spec_version",
    "name",
    "dataset",
    "model",
    "init",
    "loss",
    "regularization",
    "optimizer",
    "schedule",
    "training",
    "diagnostics",
)

#: Components a spec may leave out, and what it gets instead.
DEFAULT_COMPONENTS = {
    "init": {"type": DEFAULT_INITIALIZER.name},  # one default: what a hand-built layer draws with too
    "loss": {"type": "softmax"},
    "optimizer": {"type": "adam"},
    "schedule": {"type": "constant"},
}

#: Schedule parameters that, when a schedule requires them and the spec leaves them out,
#: are the run's length ``training.epochs`` (cosine's ``t_max``: anneal over the whole run).
RUN_LENGTH_PARAMS = ("t_max",)

#: The largest model a spec may describe: parameters (each also has a gradient and optimizer
#: state) and the forward activations of one batch (``infer``'s ``memory_bytes``).  Past these
#: a NumPy trainer cannot allocate or cannot finish; validation says so instead of a MemoryError.
MAX_PARAMS = 100_000_000
#: Forward FLOPs of one sample: past this one epoch of even a small data set takes days in NumPy.
MAX_FLOPS_PER_SAMPLE = 50 * 10**9
MAX_BATCH_ACTIVATION_BYTES = 4 * 2**30

#: Keys of ``dataset`` that belong to the job, not to the dataset component.
DATASET_COMMON_KEYS = ("type", "val_fraction", "seed", "preprocess", "augment")


class DatasetCommon(Config):
    """What every dataset entry accepts besides the dataset's own parameters."""

    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Fraction of samples held out for validation (stratified).")
    seed: int = Field(0, ge=0, description="Seed of the stratified train/validation split.")


class EarlyStopping(Config):
    """Stop when a validation metric stops improving and restore the best epoch's weights."""

    metric: Literal["val_accuracy", "val_loss"] = Field("val_accuracy", description="Metric watched after every epoch.")
    patience: int = Field(3, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")


class Training(Config):
    """How long and how to train: epochs, batches, seed, dtype, checkpoints and limits."""

    epochs: int = Field(10, ge=1, le=10_000, description="Passes over the training split.")
    batch_size: int = Field(64, ge=1, le=65_536, description="Samples per mini-batch.")
    seed: int = Field(0, ge=0, description="Seeds initialization, data order, dropout and augmentation.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Floating-point type of parameters and activations.")
    checkpoint_every: int | None = Field(
        None, ge=1, description="Iterations between checkpoints; default once per epoch (always on stop)."
    )
    max_runtime_s: float | None = Field(None, gt=0, description="Stop (with a checkpoint) after this many seconds of training.")
    early_stopping: EarlyStopping | None = Field(None, description="Stop when validation stops improving.")
    eval_batch_size: int = Field(512, ge=1, description="Samples per forward pass when evaluating.")


#: Keys a spec saved before the service's ideas left dlcore may hold (``Model.save`` files
#: from then): the service's references and attempts, which dlcore no longer reads.
LEGACY_SERVICE_KEYS = {"dataset": ("dataset_id",), "training": ("warm_start", "max_attempts")}


def upgrade_saved_spec(spec: dict) -> dict:
    """A saved spec without the keys of :data:`LEGACY_SERVICE_KEYS` (a new dict).

    A model saved with such keys keeps loading; a warm start or dataset it named was
    resolved when it was trained and means nothing to the saved weights.
    """
    out = dict(spec)
    for section, keys in LEGACY_SERVICE_KEYS.items():
        entry = out.get(section)
        if isinstance(entry, dict) and any(k in entry for k in keys):
            out[section] = {k: v for k, v in entry.items() if k not in keys}
    return out


class Diagnostics(Config):
    """Babysitting thresholds (catalogue section 9); every rule has a default."""

    enabled: bool = Field(True, description="Run the warning rules (nan_loss always runs).")
    nan_factor: float = Field(100.0, gt=1.0, description="nan_loss: fail when the loss exceeds this multiple of the first loss.")
    initial_loss_tolerance: float = Field(
        0.5, gt=0.0, description="initial_loss: warn when |first - expected| / expected exceeds this."
    )
    slow_progress_window: int = Field(50, ge=4, description="slow_progress: iterations over which the loss must fall.")
    slow_progress_min_decrease: float = Field(
        0.01, ge=0.0, lt=1.0, description="slow_progress: smallest relative decrease over the window."
    )
    overfitting_gap: float = Field(0.1, gt=0.0, le=1.0, description="overfitting: train minus validation accuracy that is too much.")
    overfitting_patience: int = Field(3, ge=1, description="overfitting: epochs validation accuracy must stay flat.")
    dead_relu_fraction: float = Field(0.5, gt=0.0, le=1.0, description="dead_relu: fraction of never-active units that warns.")
    dead_relu_samples: int = Field(256, ge=1, description="dead_relu: training samples examined at the end of each epoch.")
