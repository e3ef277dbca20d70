"""Scratch buffers of one caller: what lets one model serve many callers at once.

The layer contract (see :class:`dlcore.component.Layer`): a layer's weights and
state are shared, its cache is a value owned by whoever called ``forward``, and
the large scratch arrays a layer reuses from call to call (conv2d's padded input
and im2col columns) live in a :class:`Workspace`, never on the layer.

Which workspace a forward pass uses:

- inside ``with workspace.active():`` that workspace.  :meth:`dlcore.model.Model.scores`
  activates one per call that no concurrent call uses (the batches of one call reuse
  it; finished calls lend theirs to later ones, up to four kept idle per model), so
  concurrent predictions on one model share no buffer and need no lock;
- otherwise the calling thread's own workspace (:meth:`Workspace.of_thread`), kept
  for the life of the thread: the trainer's loop reuses the same arrays every
  iteration.  Fresh arrays over 32 MB page-fault on first touch every step, which
  cost more than the arithmetic of a small convolution.

A buffer is keyed by the layer that owns it and a name, and lives while both the
workspace and the layer do (layers are held weakly, so a dropped model frees its
buffers in every thread).  A cache that holds a workspace buffer is valid until
the next forward of the same layer with the same workspace, which is why training
calls ``backward`` before the next ``forward``.

Scratch that no layer keeps past one call (conv2d's im2col columns, rebuilt from the
input in backward) is :meth:`Workspace.shared`: one flat buffer per name and dtype for
every layer of the workspace, grown to the largest request.  Per-layer columns made a
small residual network hold 187 MB of columns, more than PyTorch's whole step; shared,
the largest layer's alone.

Example (a layer author's view)::

    def forward(self, x, training=False, rng=None):
        cols = Workspace.current().array(self, "cols", (rows, width), x.dtype)
        ...
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Iterator

from dlcore.backend import xp
from dlcore.parallel import piece_index

_active: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar("dlcore_workspace", default=None)
_per_thread = threading.local()


class Workspace:
    """Reusable scratch arrays of one caller, keyed by (owning layer, name)."""

    def __init__(self) -> None:
        self._arrays: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._shared: dict[tuple[str, object, int], object] = {}

    @classmethod
    def of_thread(cls) -> Workspace:
        """The calling thread's own workspace, created on first use and kept for the thread's life."""
        ws = getattr(_per_thread, "workspace", None)
        if ws is None:
            ws = _per_thread.workspace = cls()
        return ws

    @classmethod
    def current(cls) -> Workspace:
        """The workspace activated by the caller (:meth:`active`), else the thread's own."""
        return _active.get() or cls.of_thread()

    @contextlib.contextmanager
    def active(self) -> Iterator[Workspace]:
        """Make this the workspace of every forward and backward pass run inside the block."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def array(self, owner: object, key: str, shape: tuple[int, ...], dtype, fill: float | None = 0):
        """A scratch array of ``shape`` and ``dtype`` kept for ``owner`` under ``key``.

        Inputs:
        - owner: the layer the buffer belongs to (held weakly).
        - key: its name among the owner's buffers, e.g. ``"cols"``.
        - shape, dtype: what the caller needs; a kept buffer of another shape or dtype
          is replaced.
        - fill: value written when the buffer is created (None: left uninitialized).
          A reused buffer keeps what the owner last wrote into it, so an owner that
          relies on a part it never writes (a zero border, a column of ones) gets it.

        Returns:
        - an array of ``shape`` and ``dtype``.
        """
        shape = tuple(int(s) for s in shape)
        dtype = xp.dtype(dtype)
        arrays = self._arrays.get(owner)
        if arrays is None:
            arrays = self._arrays[owner] = {}
        buf = arrays.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = xp.empty(shape, dtype=dtype)
            if fill is not None:
                buf.fill(fill)
            arrays[key] = buf
        return buf

    def shared(self, key: str, shape: tuple[int, ...], dtype, fill: float | None = None):
        """A scratch array of ``shape`` and ``dtype`` that every layer of this workspace shares.

        Inputs:
        - key: the buffer's name, e.g. ``"conv2d.cols"``; every caller asking for the same
          name and dtype gets a view of the same memory, except that each piece of a
          :func:`dlcore.parallel.parallel_over_batch` call has its own (they run at once).
        - shape, dtype: what the caller needs; the flat buffer behind it grows to the
          largest request and is never shrunk, so layers of different sizes take turns
          in it without a new allocation (and its page faults) per call.
        - fill: value written into the view on every call (None: left as the last user
          left it, which may be another layer).

        Returns:
        - a C-contiguous view of ``shape`` and ``dtype``, valid until the next request of
          the same name and dtype in this workspace: nothing may keep it past its own call.
        """
        shape = tuple(int(s) for s in shape)
        dtype = xp.dtype(dtype)
        size = 1
        for side in shape:
            size *= side
        name = (key, dtype, piece_index())
        buf = self._shared.get(name)
        if buf is None or buf.size < size:
            buf = self._shared[name] = xp.empty(size, dtype=dtype)
        view = buf[:size].reshape(shape)
        if fill is not None:
            view.fill(fill)
        return view

    def nbytes(self) -> int:
        """Bytes held by this workspace's buffers."""
        kept = sum(buf.nbytes for arrays in self._arrays.values() for buf in arrays.values())
        return kept + sum(buf.nbytes for buf in self._shared.values())
