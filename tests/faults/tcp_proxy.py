"""A TCP proxy a test controls, to cut a client off from a server (PostgreSQL).

- ``forward()``: bytes flow both ways (the start);
- ``silence()``: a silent partition: connections stay open and new ones are accepted,
  but nothing is forwarded in either direction (nothing answers, nothing fails);
- ``reset()``: every connection is reset (RST) and new ones are reset as they arrive.

``forward()`` again heals it: silenced connections resume, new connections go through.
"""

from __future__ import annotations

import select
import socket
import struct
import threading

_RESET_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "forward"
        self.flowing = threading.Event()
        self.flowing.set()
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    # control -----------------------------------------------------------------

    def forward(self) -> None:
        self.mode = "forward"
        self.flowing.set()

    def silence(self) -> None:
        self.mode = "silent"
        self.flowing.clear()

    def reset(self) -> None:
        self.mode = "reset"
        self.flowing.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.reset()

    # the proxy ---------------------------------------------------------------

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "reset":
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        ends = {client: server, server: client}
        try:
            while True:
                # Silent: the bytes stay in the kernel's buffers, unread, until forward().
                self.flowing.wait()
                readable, _, _ = select.select(list(ends), [], [], 0.2)
                if not self.flowing.is_set():
                    continue
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed")
                    ends[sock].sendall(data)
        except (OSError, ValueError):
            for sock in ends:
                try:
                    sock.close()
                except OSError:
                    pass


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_LINGER)
        sock.close()
    except OSError:
        pass
