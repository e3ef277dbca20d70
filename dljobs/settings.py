"""Service settings, read from ``DLJOBS_*`` environment variables.

With no variable set everything runs on one machine with no server: SQLite under the
data directory and a Celery filesystem transport under ``<data_dir>/broker``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("~/.local/share/dljobs")

#: The variables OpenBLAS, OpenMP, MKL, BLIS and Accelerate read for their pool sizes.
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


class Settings(BaseSettings):
    """Every knob of the service; the README's settings table is generated from these fields."""

    model_config = SettingsConfigDict(env_prefix="DLJOBS_", extra="ignore")

    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Where the embedded SQLite database, broker folders and dataset cache live.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/dljobs.sqlite.",
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker URL; default a filesystem transport under <data_dir>/broker.",
    )
    blas_threads: int = Field(
        1,
        ge=1,
        description="BLAS threads per worker process (set in the worker's environment before "
        "NumPy loads, and again with threadpoolctl where a job trains).",
    )
    max_runtime_s: int = Field(
        86400, ge=1, description="Cap on a job's training.max_runtime_s (seconds)."
    )
    worker_memory_mb: int = Field(
        4096,
        ge=64,
        description="Memory a worker process may use (MB): a job whose estimated memory exceeds it "
        "fails before training, and a pool process is limited to it (RLIMIT_DATA), so running out "
        "fails the job instead of an OOM kill; such a failure is final, never retried.",
    )
    heartbeat_timeout_s: float = Field(
        15.0,
        gt=0,
        description="A running job whose heartbeat is older than this may be claimed again "
        "(a killed worker's job runs again elsewhere within about this long).",
    )
    heartbeat_interval_s: float = Field(
        2.0,
        gt=0,
        description="A running job's heartbeat is refreshed this often, even while it evaluates.",
    )
    progress_interval_s: float = Field(
        0.5, gt=0, description="Progress, metrics and cancel checks happen at most this often."
    )
    checkpoint_interval_s: float = Field(
        5.0,
        ge=0,
        description="A running job packs and stores a checkpoint at most this often (and when it "
        "stops or ends); a killed worker's job resumes from it, losing at most this much "
        "training plus one checkpoint period of the spec.",
    )
    keep_checkpoints: int = Field(
        2,
        ge=1,
        description="Checkpoints kept per job (the newest first); older ones are deleted as a new "
        "one is stored.",
    )
    max_checkpoint_mb: int = Field(
        1024,
        ge=1,
        description="Largest checkpoint a job may have (MiB): parameters x (1 + optimizer slots) x "
        "dtype bytes, checked when the job is submitted.",
    )
    max_eval_memory_mb: int = Field(
        2048,
        ge=1,
        description="Largest activation memory of one evaluation pass (MiB): activations per sample "
        "x training.eval_batch_size, checked when the job is submitted.",
    )
    reconcile_after_s: float = Field(
        30.0,
        ge=0,
        description="A queued job not sent for this long is sent to the broker again.",
    )
    max_upload_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest accepted dataset upload (bytes)."
    )
    max_json_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="Largest accepted JSON request body (bytes); a larger one is a 413 before "
        "it is read.",
    )
    submit_rate: str = Field(
        "120/minute",
        description="Job submissions one token may make (flask-limiter rate, e.g. 120/minute); "
        "one more is a 429 with Retry-After.",
    )
    max_streams_per_token: int = Field(
        16,
        ge=1,
        description="Event streams one token keeps open at once across every API process; "
        "one more is a 429 with Retry-After.",
    )
    ratelimit_storage_url: str | None = Field(
        None,
        description="Where per-token limits are counted; default the broker's Redis when the "
        "broker is Redis, else memory:// (one API process).",
    )
    queue_name: str = Field("dljobs", description="The Celery queue training tasks go to.")
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="The front door closes a connection (408) whose request headers have not all "
        "arrived this long after it opened or after its previous response.",
    )
    body_timeout_s: float = Field(
        300.0,
        gt=0,
        description="The front door closes a connection (408) whose request body has not all "
        "arrived this long after its headers.",
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request line plus headers the front door accepts (431 above it).",
    )
    sse_max_streams: int = Field(
        6,
        ge=1,
        description="Event streams one API process keeps open at once; keep it below the "
        "server's threads so other requests are never starved (`dljobs api --threads N` "
        "sets N - 2).",
    )
    allowed_hosts: str = Field(
        "localhost,127.0.0.1,[::1]",
        description="Comma-separated host names the API answers to (the Host header, any port); "
        "others get 400, which closes DNS rebinding. `dljobs up`/`dljobs api --host H` add H; "
        "behind a proxy or on 0.0.0.0 name the public host here. `*` allows any.",
    )
    sweep_tick_s: float = Field(
        5.0,
        gt=0,
        description="Every worker advances the unfinished sweeps this often, besides on each trial's end "
        "(catches up after a restart).",
    )

    @cached_property
    def data_path(self) -> Path:
        """The data directory, expanded (``~``) and absolute."""
        return Path(self.data_dir).expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'dljobs.sqlite'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.effective_broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        return self.data_path / "broker"

    @property
    def dataset_cache_dir(self) -> Path:
        return self.data_path / "datasets"

    @property
    def visibility_timeout_s(self) -> int:
        """Longer than any allowed job, so the broker never redelivers a running task."""
        return int(self.max_runtime_s) + 3600

    def blas_env(self) -> dict[str, str]:
        """The environment variables that size every BLAS and OpenMP pool to ``blas_threads``.

        They bind only if set before NumPy loads its BLAS: a worker's environment gets them
        when it starts (``dljobs up``, ``dljobs worker``, ``import workers``).
        """
        n = str(self.blas_threads)
        return {name: n for name in BLAS_THREAD_VARIABLES}

    @property
    def token_path(self) -> Path:
        """Where ``dljobs up`` keeps its local admin token (mode 0600)."""
        return self.data_path / "token"

    def allowed_host_names(self) -> frozenset[str]:
        """The host names of ``allowed_hosts``, lower case (``*`` for any)."""
        return frozenset(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    def ensure_dirs(self) -> None:
        """Create the data directory and, for the embedded transport, its broker folders."""
        self.data_path.mkdir(parents=True, exist_ok=True)
        if self.uses_filesystem_broker:
            for sub in ("out", "processed"):
                (self.broker_dir / sub).mkdir(parents=True, exist_ok=True)


def get_settings(**overrides) -> Settings:
    """Settings from the environment, with explicit ``overrides`` winning."""
    return Settings(**overrides)
