"""Reading uploaded ``.npz`` archives, for dataset uploads and predictions alike.

An upload is never unpickled and never decompressed blindly: the ``.npy`` headers are
read first (a few bytes per member), and an archive whose arrays would take more
memory than allowed is refused from them, before anything large is allocated.
Every refusal is a problem naming the request field the archive came in.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from api.problems import Problem, error_item

#: Media types of a request whose body is the raw ``.npz`` bytes.
NPZ_MEDIA_TYPES = ("application/octet-stream", "application/x-npz")

#: An upload's arrays may take at most this many times the upload limit once
#: decompressed (``np.savez_compressed`` of real data shrinks it 2-10 times): a small
#: zip of zeros must not make the API allocate gigabytes.
MAX_EXPANSION = 16


#: How a savez call looks, for the messages.
SAVEZ_HINT = "numpy.savez(file, x=x, y=y)"

#: The first bytes of a zip archive (an ``.npz`` is one): a local file header, or the
#: end-of-directory record an empty archive starts with.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def not_npz_reason(raw: bytes, savez: str = SAVEZ_HINT) -> str | None:
    """Why ``raw`` is not an ``.npz`` archive, said of what it looks like; None for a zip.

    Checked before ``np.load``, which takes any bytes that are not a zip or ``.npy``
    for a pickle and so would call a text file "pickled data".

    Inputs:
    - raw: the uploaded bytes.
    - savez: the call that writes a good archive, for the message.
    """
    if raw.startswith(ZIP_MAGICS):
        return None
    fix = f"save the arrays with {savez}"
    if raw.startswith(b"\x93NUMPY"):
        return f"a single .npy array, not an .npz archive; {fix}"
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return f"a Python pickle, not an .npz archive (pickles are refused); {fix}"
    head = raw[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(raw) > len(head) and exc.start >= len(head) - 3  # a character cut at the end
        text = head[:exc.start].decode("utf-8") if cut else None
    if text is not None and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        return f"a text file, not an .npz archive; {fix}"
    return f"not an .npz archive (a zip of .npy arrays); {fix}"


def npy_headers(raw: bytes) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{array name: (shape, dtype)}`` of an ``.npz``, read from the headers only.

    Nothing but the few header bytes of each member is decompressed, so this costs
    nothing whatever the arrays' size.  An unreadable archive or header yields what could
    be read; the loader that follows reports the error.
    """
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                out[info.filename[:-4]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except Exception:  # noqa: BLE001, S110  (the loader that follows reports an unreadable file)
        pass
    return out


#: Kinds of array an upload may hold: booleans, integers, floats (never objects, strings,
#: structured or complex data, which no model reads).
ALLOWED_DTYPE_KINDS = "biuf"


def check_members(raw: bytes, field: str) -> None:
    """A 422 naming ``field`` unless every member of the archive is an ``.npy`` of numbers.

    Read from the zip directory and the ``.npy`` headers only; an unreadable archive is
    left to the loader that follows.
    """
    def refuse(message: str):
        return Problem(422, "Bad upload", f"{field}: {message}", [error_item(field, message)])

    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [info.filename for info in archive.infolist()]
    except Exception:  # noqa: BLE001  (the loader that follows reports an unreadable file)
        return
    foreign = [name for name in names if not name.endswith(".npy")]
    if foreign:
        raise refuse(f"member {foreign[0]!r} is not an .npy array; an .npz holds only "
                     f"arrays ({SAVEZ_HINT})")
    for name, (shape, dtype) in npy_headers(raw).items():
        if dtype.kind == "O":
            raise refuse(f"array {name!r} holds pickled objects, which are refused; save "
                         "plain arrays of numbers")
        if dtype.kind not in ALLOWED_DTYPE_KINDS:
            raise refuse(f"array {name!r} has dtype {dtype}; only booleans, integers and "
                         "floats are accepted")


def array_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` takes once loaded (exact, no overflow)."""
    return int(np.prod(shape, dtype=object)) * int(dtype.itemsize)


def members_size(raw: bytes) -> int | None:
    """The total uncompressed size the zip directory of ``raw`` declares; None if unreadable.

    Read from the central directory (``ZipInfo.file_size``): nothing is decompressed, and
    zipfile never yields more than that size of a member when it is later read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return sum(info.file_size for info in archive.infolist())
    except Exception:  # noqa: BLE001  (the loader that follows reports an unreadable file)
        return None


def check_expansion(raw: bytes, field: str, limit: int) -> None:
    """A 413 problem naming ``field`` if ``raw`` would take over ``limit`` bytes expanded.

    Both the archive's members (what zip would write out, a zip bomb included) and the
    arrays their ``.npy`` headers declare are checked, before anything is expanded.
    """
    total = sum(array_bytes(*h) for h in npy_headers(raw).values())
    if total > limit:
        message = (f"its arrays take {total} bytes once loaded, more than the limit of "
                   f"{limit} bytes ({MAX_EXPANSION} x DLJOBS_MAX_UPLOAD_BYTES)")
        raise Problem(413, "Payload Too Large", f"{field}: {message}",
                      [error_item(field, message)])
    # Members that are not the arrays they declare (or not .npy at all) are caught here.
    expanded = members_size(raw)
    if expanded is not None and expanded > limit:
        message = (f"the archive expands to {expanded} bytes ({len(raw)} bytes compressed), "
                   f"more than the limit of {limit} bytes "
                   f"({MAX_EXPANSION} x DLJOBS_MAX_UPLOAD_BYTES); nothing was expanded")
        raise Problem(413, "Payload Too Large", f"{field}: {message}",
                      [error_item(field, message)])


def read_npz_array(raw: bytes, field: str, sample_size: int, max_samples: int) -> np.ndarray:
    """The ``inputs`` (or ``x``, or only) array of an uploaded ``.npz``; never unpickles.

    Inputs:
    - raw: the uploaded bytes.
    - field: the request field they came in (named by every problem).
    - sample_size: numbers per sample; with ``max_samples`` it bounds the array's size.
    Returns: the array as stored.  Every failure is a 422 naming ``field``, and the
    message never echoes an unexpected exception's text.  An array larger than
    ``max_samples`` samples of ``sample_size`` float64 numbers is refused from its
    header, before it is decompressed.
    """
    max_bytes = max_samples * max(1, sample_size) * 8

    def refuse(message: str):
        return Problem(422, "Bad inputs", f"{field}: {message}", [error_item(field, message)])

    reason = not_npz_reason(raw, "numpy.savez(file, inputs=x)")
    if reason:
        raise refuse(reason)
    check_members(raw, field)
    expanded = members_size(raw)
    if expanded is not None and expanded > MAX_EXPANSION * max_bytes:
        raise refuse(f"the archive expands to {expanded} bytes ({len(raw)} bytes compressed), "
                     f"more than {MAX_EXPANSION * max_bytes} bytes; nothing was expanded")
    headers = npy_headers(raw)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            keys = list(npz.files)
            key = next((k for k in ("inputs", "x") if k in keys), keys[0] if keys else None)
            if key is None:
                raise refuse("the archive holds no array")
            if key in headers and array_bytes(*headers[key]) > max_bytes:
                shape = headers[key][0]
                raise refuse(f"'{key}' has shape {shape}: at most {max_samples} samples "
                             f"of {sample_size} numbers each are accepted per request")
            return npz[key]
    except Problem:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise refuse("holds pickled objects, which are refused; save plain arrays") from None
        raise refuse(f"not a readable .npz archive ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001  (any unreadable upload is the client's error)
        raise refuse(f"not a readable .npz archive ({type(exc).__name__})") from None
