"""The embedded service's front door: an asyncio reverse proxy in front of gunicorn.

gunicorn's gthread workers hand each accepted connection to a thread, which then blocks
reading the request: eight clients sending their headers slowly hold every thread and
``/healthz`` times out.  The front door reads each request whole -- headers within
``header_timeout_s``, body within ``body_timeout_s``, both bounded in size -- on one event
loop, where a slow client costs a socket and a few kilobytes, not a thread.  Only then is
the request sent to gunicorn on a private address; the response streams back as it is
written (event streams flow event by event), so nothing on the way back is buffered.

One request at a time per client connection; each forwarded request uses its own upstream
connection (``Connection: close``), so the response ends where gunicorn closes it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

#: Headers that describe one hop, not the request: never forwarded as received.
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
    "transfer-encoding", "expect", "content-length",
})  # fmt: skip

#: How many bytes of the response body are passed on per read.
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int
    max_body_bytes: int

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_upload_bytes,
        )


class Refusal(Exception):
    """The request cannot be forwarded: answer ``status`` and close the connection."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class ClientGone(Exception):
    """The client closed the connection between requests: nothing to answer."""


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def problem_response(status: int, title: str, detail: str) -> bytes:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def read_head(reader: asyncio.StreamReader, limits: Limits, first: bool) -> Request:
    """The request line and headers, or a Refusal (408 late, 431 too big, 400 malformed)."""
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limits.header_timeout_s)
    except TimeoutError:
        # An idle keep-alive connection (no byte of a next request) closes quietly.
        if not first and not reader._buffer:
            raise ClientGone() from None
        raise Refusal(408, "Request Timeout", f"the request headers did not arrive within "
                      f"{limits.header_timeout_s:g} s") from None
    except asyncio.LimitOverrunError:
        raise Refusal(431, "Request Header Fields Too Large",
                      f"the request headers are over {limits.max_header_bytes} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            raise ClientGone() from None
        raise Refusal(400, "Bad Request", "the connection closed inside the request headers") from None
    if len(raw) > limits.max_header_bytes:
        raise Refusal(431, "Request Header Fields Too Large",
                      f"the request headers are over {limits.max_header_bytes} bytes")
    lines = raw.decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # RFC 9112 2.2: a server ignores empty lines before the request line
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refusal(400, "Bad Request", "the request line is not 'METHOD target HTTP/1.x'")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise Refusal(400, "Bad Request", f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return Request(parts[0], parts[1], parts[2], headers)


async def read_body(reader, writer, request: Request, limits: Limits) -> bytes:
    """The whole body within ``body_timeout_s``; too big is a 413 before any of it is read."""
    chunked = "chunked" in (request.header("transfer-encoding") or "").lower()
    length_header = request.header("content-length")
    if chunked and length_header is not None:
        raise Refusal(400, "Bad Request", "both Content-Length and Transfer-Encoding: chunked")
    length = 0
    if length_header is not None:
        if not length_header.isdigit():
            raise Refusal(400, "Bad Request", "Content-Length is not a number")
        length = int(length_header)
        if length > limits.max_body_bytes:
            raise Refusal(413, "Content Too Large",
                          f"the body is {length} bytes, over the limit of {limits.max_body_bytes}")
    if not chunked and length == 0:
        return b""
    if (request.header("expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        if chunked:
            return await asyncio.wait_for(_read_chunked(reader, limits.max_body_bytes), limits.body_timeout_s)
        return await asyncio.wait_for(reader.readexactly(length), limits.body_timeout_s)
    except TimeoutError:
        raise Refusal(408, "Request Timeout",
                      f"the request body did not arrive within {limits.body_timeout_s:g} s") from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        raise Refusal(400, "Bad Request", "the request body ended early or is malformed") from None


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers are dropped: the upstream request carries Content-Length
            return bytes(body)
        if len(body) + size > limit:
            raise Refusal(413, "Content Too Large", f"the body is over the limit of {limit} bytes")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def upstream_request(request: Request, peer: str) -> bytes:
    headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_HEADERS
               and k.lower() not in ("x-forwarded-for", "x-real-ip")]
    previous = request.header("x-forwarded-for")
    # The client as the front door saw it is appended, never trusted from the client alone.
    headers.append(("X-Forwarded-For", f"{previous}, {peer}" if previous else peer))
    headers.append(("X-Real-IP", peer))
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", str(len(request.body))))
    headers.append(("Connection", "close"))
    head = f"{request.method} {request.target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (head + "\r\n").encode("latin-1") + request.body


async def open_upstream(upstream: str):
    if upstream.startswith("unix:"):
        return await asyncio.open_unix_connection(upstream[len("unix:"):])
    host, _, port = upstream.rpartition(":")
    return await asyncio.open_connection(host, int(port))


def _response_framed(head: bytes, method: str) -> bool:
    """Whether the client can tell where this response ends without the connection closing."""
    status_line, _, rest = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return True
    lowered = rest.lower()
    return b"\ncontent-length:" in b"\n" + lowered or b"chunked" in lowered


def _rewrite_connection(head: bytes, keep_alive: bool) -> bytes:
    lines = head.split(b"\r\n")[:-2]
    kept = [line for line in lines if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    kept.append(b"Connection: keep-alive" if keep_alive else b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


async def forward(request: Request, peer: str, writer: asyncio.StreamWriter, upstream: str) -> bool:
    """Send ``request`` to gunicorn and stream its response back; True to keep the connection."""
    try:
        up_reader, up_writer = await open_upstream(upstream)
    except OSError as exc:
        raise Refusal(502, "Bad Gateway", f"the API server is not answering: {exc}") from None
    try:
        up_writer.write(upstream_request(request, peer))
        await up_writer.drain()
        try:
            head = await up_reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            raise Refusal(502, "Bad Gateway", "the API server closed without an answer") from None
        keep_alive = request.keep_alive and _response_framed(head, request.method)
        writer.write(_rewrite_connection(head, keep_alive))
        await writer.drain()
        # Each read is passed on at once: an event stream reaches the client event by event.
        while chunk := await up_reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        return keep_alive
    finally:
        up_writer.close()
        with contextlib.suppress(OSError):
            await up_writer.wait_closed()


async def serve_client(reader, writer, limits: Limits, upstream: str) -> None:
    peer_info = writer.get_extra_info("peername")
    peer = peer_info[0] if isinstance(peer_info, tuple) else "unix"
    first = True
    try:
        while True:
            try:
                request = await read_head(reader, limits, first)
                request.body = await read_body(reader, writer, request, limits)
            except ClientGone:
                return
            first = False
            if not await forward(request, peer, writer, upstream):
                return
    except Refusal as refusal:
        with contextlib.suppress(ConnectionError):
            writer.write(problem_response(refusal.status, refusal.title, refusal.detail))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the client left mid-response: nothing more to send it
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve(host: str, port: int, upstream: str, limits: Limits, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    handlers: dict[asyncio.Task, asyncio.StreamWriter] = {}

    async def handle(reader, writer) -> None:
        handlers[asyncio.current_task()] = writer
        try:
            await serve_client(reader, writer, limits, upstream)
        finally:
            handlers.pop(asyncio.current_task(), None)

    # The reader's limit bounds how far readuntil looks for the end of the headers (431 past it).
    server = await asyncio.start_server(
        handle, host, port, limit=limits.max_header_bytes, backlog=1024, reuse_address=True,
    )
    async with server:
        if ready is not None:
            ready.set()
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # Open connections are closed under their handlers, which then end on their own:
        # cancelling them instead makes Python 3.11's stream callback log each one.
        for writer in list(handlers.values()):
            writer.transport.abort()
        if handlers:
            await asyncio.wait(list(handlers), timeout=2)


def private_upstream(data_path: Path, free_port) -> str:
    """Where gunicorn listens behind the front door: a unix socket in the data directory when
    its path fits in sun_path (108 bytes), else a free loopback port."""
    sock = data_path / "api.sock"
    if len(os.fsencode(sock)) < 100:
        return f"unix:{sock}"
    return f"127.0.0.1:{free_port()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="dljobs front door: buffer requests, then forward to gunicorn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--upstream", required=True, help="unix:/path or host:port of gunicorn")
    args = parser.parse_args(argv)
    # deferred: the settings load only when the front door runs, not when it is imported
    from dljobs.settings import get_settings

    asyncio.run(serve(args.host, args.port, args.upstream, Limits.from_settings(get_settings())))


if __name__ == "__main__":
    main()
