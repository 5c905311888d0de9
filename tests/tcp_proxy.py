"""A loopback TCP proxy in a thread that can stop forwarding: a network partition.

Frozen, it keeps every connection open and keeps reading nothing: the client's kernel
sees an established connection whose peer never answers, as behind a dead link or a
firewall that drops packets (TCP keepalives would not notice either, the proxy's kernel
acknowledges them).
"""

from __future__ import annotations

import select
import socket
import threading
from pathlib import Path


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; stop forwarding once ``frozen`` is set,
    the file ``freeze_file`` exists (so a pytest subprocess can freeze it) or the client
    sends ``freeze_on``; or, with ``answer=False``, accept and never answer at all."""

    def __init__(self, upstream: tuple[str, int], *, freeze_file: Path | None = None,
                 freeze_on: bytes | None = None, answer: bool = True) -> None:
        self.upstream = upstream
        self.freeze_file = freeze_file
        self.freeze_on = freeze_on
        self.answer = answer
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def is_frozen(self) -> bool:
        if self.freeze_file is not None and self.freeze_file.exists():
            self.frozen.set()
        return self.frozen.is_set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            client, _ = self._listener.accept()
            self._sockets.append(client)
            if not self.answer:
                continue
            server = socket.create_connection(self.upstream)
            self._sockets.append(server)
            thread = threading.Thread(target=self._pump, args=(client, server), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peers), [], [], 0.1)
            if self.is_frozen():  # read nothing more, forward nothing more
                continue
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if sock is client and self.freeze_on and self.freeze_on in data:
                    self.frozen.set()
                if not self.is_frozen():  # else lost in the partition
                    peers[sock].sendall(data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
