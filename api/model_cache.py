"""The app's cache of loaded models, shared by the views that predict and delete.

Loading a model parses its whole ``.npz``, so the last few are kept, keyed by
``(job id, artifact id)``: a rerun's new artifact never answers with an old model.
Deleting a job forgets its models (``api.jobs`` does, ``api.models`` loads them; the
cache lives here so neither blueprint imports the other).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from flask import Flask, current_app

from dlcore.loading import load_model
from dljobs import artifacts

EXTENSION_KEY = "dljobs.model_cache"


class ModelCache:
    """The last ``size`` loaded values by key, least recently used dropped first."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int], load: Callable):
        """The value cached under ``key``, or ``load()``'s, cached.

        ``load`` runs outside the lock: two threads may load one model at once, and the
        later one is kept; neither waits for the other's parse.
        """
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def drop(self, job_id: str) -> None:
        """Forget every model of ``job_id``."""
        with self._lock:
            for key in [k for k in self._items if k[0] == job_id]:
                del self._items[key]


def install(app: Flask) -> None:
    """Give ``app`` its own cache (called by ``create_app``)."""
    app.extensions[EXTENSION_KEY] = ModelCache()


def app_model_cache() -> ModelCache:
    """The current app's cache."""
    return current_app.extensions[EXTENSION_KEY]


def loaded_model(job_id: str, artifact, factory):
    """The loaded model of a stored model artifact, shared by every thread of the process.

    Loaded from a spooled copy of its chunks (``dljobs.artifacts``; read with sessions
    from ``factory``), so its bytes are never whole in memory beside its arrays.

    No lock around its use: a dlcore model's forward pass keeps its caches as values and
    its scratch buffers in a workspace per call (``Model.scores``), so concurrent
    predictions with one model answer exactly as they do one by one
    (tests/api/test_api_predict.py and tests/dlcore/models/test_concurrent_predictions.py).
    """
    def load():
        with artifacts.spooled_copy(factory, artifact) as file:
            return load_model(file)

    return app_model_cache().get((job_id, artifact.id), load)
