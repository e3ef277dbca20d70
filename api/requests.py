"""Request hygiene every blueprint needs: JSON bodies, ids, query integers, idempotency.

Everything a client sends is checked here before it reaches a query: a body nested
too deeply or holding text no database column can store, an id that cannot be a
stored id, an integer outside what the column holds.  Each refusal is a 400
:class:`~api.problems.Problem` naming the place at fault.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app, request

from api.problems import Problem, error_item
from dljobs.downsample import MIN_POINTS

#: Deepest nesting of arrays and objects a JSON body may have (a spec needs about 6,
#: predict inputs 5); deeper bodies would exhaust the parser's recursion.
MAX_JSON_DEPTH = 64

#: The largest value of an INTEGER column (PostgreSQL's is 32-bit): a larger query
#: parameter would be a database error, not an empty answer.
MAX_DB_INT = 2**31 - 1

#: The JSON body limit when the settings say none (``DLJOBS_MAX_JSON_BYTES``).
DEFAULT_MAX_JSON_BYTES = 1024 * 1024

#: Bytes read from the socket at a time while a JSON body arrives.
READ_CHUNK = 64 * 1024

# ---------------------------------------------------------------------------- JSON bodies


def read_json_body(expect_object: bool = True):
    """The request's JSON body; malformed JSON is a 400 naming ``body``.

    Also a 400, naming the place: nesting deeper than ``MAX_JSON_DEPTH``, and strings
    (keys or values) holding NUL or unpaired surrogates, which no database text column
    can store (PostgreSQL refuses NUL, UTF-8 has no surrogates).
    """
    raw = read_limited_body(max_json_bytes())
    if not raw.strip():
        raise Problem(400, "Malformed request", "the request body is empty; send a JSON object",
                      [error_item("body", "expected a JSON object, got an empty body")])
    try:
        body = jsonlib.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "Malformed JSON", f"the request body is not valid JSON: {exc}",
                      [error_item("body", f"invalid JSON: {exc}")]) from None
    except RecursionError:
        message = f"nested deeper than {MAX_JSON_DEPTH} levels"
        raise Problem(400, "Malformed JSON", f"the request body is {message}",
                      [error_item("body", message)]) from None
    if expect_object and not isinstance(body, dict):
        raise Problem(400, "Malformed request", "the request body must be a JSON object",
                      [error_item("body", f"expected a JSON object, got {type(body).__name__}")])
    check_json_strings(body)
    return body


def max_json_bytes() -> int:
    """The largest JSON body this app reads (``DLJOBS_MAX_JSON_BYTES``)."""
    settings = current_app.config.get("DLJOBS_SETTINGS")
    return int(getattr(settings, "max_json_bytes", DEFAULT_MAX_JSON_BYTES))


def body_too_large(size_text: str, limit: int) -> Problem:
    """The 413 of a JSON body over ``limit`` bytes."""
    message = f"the JSON body is {size_text}, more than the limit of {limit} bytes " \
              "(DLJOBS_MAX_JSON_BYTES)"
    return Problem(413, "Payload Too Large", message, [error_item("body", message)])


def read_limited_body(limit: int) -> bytes:
    """The request body, refused with a 413 once it is known to exceed ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before one byte is read, so a
    60 MB body costs nothing; a chunked body (no length) is read in chunks and refused
    as soon as it passes the limit, so at most ``limit + READ_CHUNK`` bytes are held.
    The bytes read are cached on the request, as ``request.get_data(cache=True)`` does.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise body_too_large(f"{declared} bytes (Content-Length)", limit)
    cached = getattr(request, "_cached_data", None)
    if cached is not None:
        return cached
    stream = request.stream
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - size) or 1)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise body_too_large(f"over {limit} bytes (read so far: {size})", limit)
    raw = b"".join(chunks)
    request._cached_data = raw  # later readers (get_data) see the same bytes
    return raw


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored as database text, or None."""
    if "\x00" in text:
        return "must not contain the NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


def check_json_strings(body, root: str = "") -> None:
    """A 400 naming the first place in ``body`` nested too deeply or with an unstorable string.

    Walks the parsed body without recursion (a body may be as deep as the parser allows).
    """
    def refuse(where: str, reason: str, title: str = "Malformed request"):
        where = where or "body"
        return Problem(400, title, f"{where}: {reason}", [error_item(where, reason)])

    if isinstance(body, str) and unstorable_reason(body):
        raise refuse(root, unstorable_reason(body))
    stack = [(body, root, 0)]
    while stack:
        value, where, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise refuse(where, f"nested deeper than {MAX_JSON_DEPTH} levels", "Malformed JSON")
        if isinstance(value, dict):
            items = []
            for key, item in value.items():
                if unstorable_reason(key):
                    raise refuse(where, f"a key {unstorable_reason(key)}")
                items.append((f"{where}.{key}" if where else key, item))
        else:
            items = ((f"{where}[{index}]", item) for index, item in enumerate(value))
        for path, item in items:
            if isinstance(item, str):
                reason = unstorable_reason(item)
                if reason:
                    raise refuse(path, reason)
            elif isinstance(item, (dict, list)):
                stack.append((item, path, depth + 1))


# ---------------------------------------------------------------------------- ids


_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def plausible_id(value) -> bool:
    """Whether ``value`` may be a stored id (1-64 letters, digits, ``_``, ``-``).

    Anything else is answered "not found" without a query: PostgreSQL refuses NUL in
    a parameter, and no id holds other characters.
    """
    return isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _ID_CHARS


# ---------------------------------------------------------------------------- query parameters


def id_list_arg(name: str, most: int) -> list[str]:
    """A comma-separated list of 1 to ``most`` distinct stored ids (``?jobs=a,b,c``), or a 400 naming it.

    Blanks around each id are dropped, a repeated id counts once, order is kept.
    """
    raw = ",".join(request.args.getlist(name))
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not ids:
        message = "give 1 or more job ids, separated by commas"
    elif len(ids) > most:
        message = f"at most {most} ids, got {len(ids)}"
    else:
        bad = next((i for i in ids if not plausible_id(i)), None)
        if bad is None:
            return ids
        message = f"{bad[:70]!r} is not an id (1-64 letters, digits, _ or -)"
    raise Problem(400, "Bad query parameter", f"{name}: {message}", [error_item(name, message)])


def int_arg(name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    """An integer query parameter within [low, high], or a 400 naming it."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Problem(400, "Bad query parameter", f"{name} must be an integer",
                      [error_item(name, f"must be an integer, got {value!r}")]) from None
    if number < low or (high is not None and number > high):
        rule = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Problem(400, "Bad query parameter", f"{name} must be {rule}",
                      [error_item(name, f"must be {rule}, got {number}")])
    return number


@dataclass(frozen=True)
class IntQueryArg:
    """An integer query parameter declared once: the view reads it, the document describes it."""

    name: str
    default: int | None
    low: int
    high: int | None = None

    def read(self) -> int | None:
        """This request's value (``default`` when absent), or a 400 naming the parameter."""
        return int_arg(self.name, self.default, self.low, self.high)

    def parameter(self) -> dict:
        """The OpenAPI parameter object of this query parameter."""
        schema = {"type": "integer", "minimum": self.low}
        if self.high is not None:
            schema["maximum"] = self.high
        return {"name": self.name, "in": "query", "schema": schema}


#: The most points ``?max_points=`` may ask for, per kind: a chart needs about two per pixel.
MAX_CHART_POINTS = 20_000

#: ``?max_points=N`` of a metric history: the whole history downsampled to N points of each
#: kind, every bucket's min and max kept (``dljobs.downsample``); a 400 outside its bounds.
MAX_POINTS = IntQueryArg("max_points", None, MIN_POINTS, MAX_CHART_POINTS)


def refuse_unknown_query(parameters: Iterable[dict]) -> None:
    """A 400 naming the first query parameter of the request that ``parameters`` does not declare.

    ``parameters`` are the view's OpenAPI parameter objects (the ones its ``documented``
    declares), so what a view accepts and what the document says are one list: a typo
    (``?stauts=running``) is a problem naming it, never a silently unfiltered answer.
    """
    allowed = [p["name"] for p in parameters if p.get("in") == "query"]
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        which = ", ".join(allowed) or "none"
        raise Problem(400, "Unknown query parameter",
                      f"{unknown[0]!r} is not a query parameter of {request.method} "
                      f"{request.path} (allowed: {which})",
                      [error_item(name, f"unknown query parameter (allowed: {which})")
                       for name in unknown])


# ---------------------------------------------------------------------------- idempotency


def request_hash(body) -> str:
    """The SHA-256 of ``body`` in canonical JSON: a replay with the same key must send it again."""
    canonical = jsonlib.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
