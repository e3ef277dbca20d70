"""A trained (or freshly built) network with its preprocessing, saved as pickle-free ``.npz``.

``Model.predict`` / ``predict_proba`` take raw public-layout inputs ((N, C, H, W)
or (N, D)), apply the saved preprocessing, convert to the internal layout once
and run the stack in evaluation mode.  The file layout is documented in
docs/formats.md; it holds no times, hosts or ids, and the same weights always
give the same bytes.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlcore.errors import ConfigError
from dlcore.layout import to_internal
from dlcore.workspace import Workspace

MODEL_FORMAT_VERSION = 1

# --------------------------------------------------------------------------- npz helpers

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # zip entries carry no wall-clock time


def write_npz(arrays: Mapping[str, np.ndarray], compress: bool = True, file: IO[bytes] | None = None) -> bytes | None:
    """Serialize ``arrays`` as an ``.npz`` (readable by ``np.load``) with fixed timestamps.

    Object arrays are refused, so the file loads with ``allow_pickle=False``.
    ``compress=False`` stores the members as they are (``np.savez``): float weights
    deflate by a few percent only, at about 30 times the cost of writing them.
    With ``file`` (a seekable binary file) the archive is written there and None is
    returned: each array streams into its member, so a model of a gigabyte is not held
    a second (and third) time in memory as bytes.  Both ways give the same bytes.
    """
    if file is None:
        buf = io.BytesIO()
        write_npz(arrays, compress, buf)
        return buf.getvalue()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(file, "w", compression=method) as zf:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            if arr.dtype.hasobject:
                raise TypeError(f"{key}: object arrays cannot be saved without pickle")
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            # The size known up front makes zipfile choose zip64 as writestr did (same bytes).
            info.file_size = _npy_size(arr)
            with zf.open(info, "w") as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    return None


def _npy_size(arr: np.ndarray) -> int:
    """Bytes of ``arr`` as a ``.npy`` file: its header plus its data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
    return len(header.getvalue()) + arr.nbytes


def read_npz(source: bytes | str | Path | IO[bytes]) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (bytes, path or file), loaded with ``allow_pickle=False``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    with np.load(source, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def json_to_array(obj: Any) -> np.ndarray:
    """A JSON document as a uint8 array (its UTF-8 bytes, keys sorted)."""
    return np.frombuffer(json.dumps(obj, sort_keys=True).encode("utf-8"), dtype=np.uint8).copy()


def array_to_json(arr: np.ndarray) -> Any:
    return json.loads(np.asarray(arr, dtype=np.uint8).tobytes().decode("utf-8"))


def assign_arrays(named: Mapping[str, np.ndarray], saved: Mapping[str, np.ndarray], what: str) -> None:
    """Copy ``saved`` into the live arrays ``named`` in place (checking names and shapes)."""
    missing = sorted(set(named) - set(saved))
    extra = sorted(set(saved) - set(named))
    if missing or extra:
        raise ValueError(f"{what}: saved arrays do not match the model (missing {missing}, unexpected {extra})")
    for key, live in named.items():
        if live.shape != saved[key].shape:
            raise ValueError(f"{what} {key}: saved shape {saved[key].shape} differs from the model's {live.shape}")
        np.copyto(live, saved[key], casting="unsafe")


# --------------------------------------------------------------------------- the model


class Model:
    """A layer stack plus the preprocessing and spec it came from.

    Attributes: ``spec`` (normalized), ``net`` (a Sequential), ``preprocessors``
    (fitted on the training split), ``sample_shape`` (public), ``num_classes``,
    ``loss`` (gives probabilities), ``best_epoch`` (the epoch whose weights these
    are, when early stopping restored them; else the last trained epoch or None).
    """

    def __init__(self, spec: dict, net, preprocessors, sample_shape, num_classes: int, loss, best_epoch: int | None = None):
        self.spec = spec
        self.net = net
        self.preprocessors = list(preprocessors)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.num_classes = int(num_classes)
        self.loss = loss
        self.best_epoch = best_epoch
        # Workspaces of finished calls, lent to the next ones: a fresh workspace per call would
        # page-fault its large buffers every time. The lock guards this list only, never a forward pass.
        self._idle_workspaces: list[Workspace] = []
        self._pool_lock = threading.Lock()

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.spec["training"]["dtype"])

    # ----------------------------------------------------------------- data path

    def fit_preprocessing(self, x: np.ndarray) -> np.ndarray:
        """Fit every preprocessor in turn on ``x`` (training split, public layout); return the transformed x."""
        for p in self.preprocessors:
            p.fit(x)
            x = p.transform(x)
        return x

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """Raw public inputs -> preprocessed public inputs in the model's dtype (shape checked).

        Inputs: x: (N, *sample_shape); a single sample of ``sample_shape`` is also accepted.
        """
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ConfigError("inputs", f"inputs must be a rectangular array of numbers ({exc})") from None
        if x.shape == self.sample_shape:
            x = x[None]
        if x.ndim != len(self.sample_shape) + 1 or tuple(x.shape[1:]) != self.sample_shape:
            raise ConfigError(
                "inputs",
                f"expected samples of shape {list(self.sample_shape)} (N, {', '.join(map(str, self.sample_shape))}), "
                f"got an array of shape {list(x.shape)}",
            )
        if x.dtype.kind not in "biuf":  # as training data (dlcore.datasets.npz.check_arrays); no complex
            raise ConfigError("inputs", f"inputs must be real numbers, got dtype {x.dtype}")
        with np.errstate(over="ignore"):
            x = x.astype(self.dtype, copy=False)
        if not np.all(np.isfinite(x)):  # a NaN would predict class 0 without a word
            raise ConfigError("inputs", f"inputs must be finite numbers in {self.dtype} (found NaN, infinity or an overflow)")
        for p in self.preprocessors:
            x = p.transform(x)
        return np.asarray(x, dtype=self.dtype)

    def scores_of_preprocessed(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class scores (N, C) of preprocessed public inputs, evaluated in batches.

        Each call runs in a workspace no concurrent call uses (the batches of the call share
        it; finished calls lend theirs to later ones, so buffers stay warm), so one model
        answers concurrent callers with no lock around the forward pass and no copy of its
        weights: evaluation mode writes no weight or state, and every scratch array is the call's.
        """
        out = []
        workspace = self._borrow_workspace()
        try:
            with workspace.active():
                for start in range(0, len(x), batch_size):
                    out.append(self.net.forward(to_internal(x[start : start + batch_size]), training=False))
        finally:
            self._give_back(workspace)
        if not out:
            return np.zeros((0, self.num_classes), dtype=self.dtype)
        return np.concatenate(out, axis=0)

    #: Idle workspaces a model keeps for its next callers (as many as usually call it at once).
    MAX_IDLE_WORKSPACES = 4

    def _borrow_workspace(self) -> Workspace:
        """A workspace no other call is using: an idle one (its buffers already touched) or a new one."""
        with self._pool_lock:
            return self._idle_workspaces.pop() if self._idle_workspaces else Workspace()

    def _give_back(self, workspace: Workspace) -> None:
        with self._pool_lock:
            if len(self._idle_workspaces) < self.MAX_IDLE_WORKSPACES:
                self._idle_workspaces.append(workspace)

    def scores(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class scores (N, C) of raw public inputs x: (N, *sample_shape)."""
        return self.scores_of_preprocessed(self.preprocess(x), batch_size)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) of raw inputs x: (N, *sample_shape)."""
        return self.loss.probabilities(self.scores(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted labels (N,) int64 of raw inputs x: (N, *sample_shape)."""
        return np.argmax(self.scores(x), axis=1).astype(np.int64)

    # ----------------------------------------------------------------- arrays

    def params(self) -> dict[str, np.ndarray]:
        return dict(self.net.named_params())

    def state(self) -> dict[str, np.ndarray]:
        return dict(self.net.named_state())

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything a saved model holds, under the documented keys (docs/formats.md)."""
        out: dict[str, np.ndarray] = {
            "format_version": np.asarray(MODEL_FORMAT_VERSION),
            "kind": np.asarray("model"),
            "spec_json": json_to_array(self.spec),
            "sample_shape": np.asarray(self.sample_shape, dtype=np.int64),
            "num_classes": np.asarray(self.num_classes),
            "best_epoch": np.asarray(-1 if self.best_epoch is None else self.best_epoch),
        }
        out.update({f"param/{k}": v for k, v in self.params().items()})
        out.update({f"state/{k}": v for k, v in self.state().items()})
        for i, p in enumerate(self.preprocessors):
            out.update({f"preprocess/{i}/{k}": np.asarray(v) for k, v in p.state.items()})
        return out

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Overwrite parameters, state and preprocessing statistics from saved ``arrays``."""
        assign_arrays(self.params(), _under(arrays, "param/"), "param")
        assign_arrays(self.state(), _under(arrays, "state/"), "state")
        for i, p in enumerate(self.preprocessors):
            p.state = {k: np.array(v) for k, v in _under(arrays, f"preprocess/{i}/").items()}
        best = int(arrays.get("best_epoch", -1))
        self.best_epoch = None if best < 0 else best

    def to_bytes(self) -> bytes:
        return write_npz(self.arrays())

    def save(self, file: str | Path | IO[bytes], compress: bool = True) -> None:
        """Write the model as ``.npz`` to a path or a binary file object, streamed (never whole
        bytes in memory); ``compress=False`` skips deflating, which costs about 30 times the
        write for a few percent fewer bytes of float weights."""
        if isinstance(file, (str, Path)):
            with open(file, "wb") as out:
                write_npz(self.arrays(), compress=compress, file=out)
        else:
            write_npz(self.arrays(), compress=compress, file=file)

    def __repr__(self) -> str:
        n = sum(int(v.size) for v in self.params().values())
        return f"Model(sample_shape={self.sample_shape}, num_classes={self.num_classes}, params={n})"


def _under(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
