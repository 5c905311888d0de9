"""A loopback TCP proxy that delays every chunk, to emulate a network (this kernel has no
netem), and counts the round trips that cross it.

Each chunk read from one side is written to the other ``delay`` seconds later, in order,
so a request and its reply cross a link of ``2 * delay`` round-trip time. A round trip is
counted each time a connection's client sends after it last received (or first sends):
one flight of requests, answered by one flight of replies. Connection set-up (TCP, the
startup and authentication exchange) is counted too: ``connections`` says how many there
were, for a reader who wants round trips "after the connection is open".

    with LatencyProxy(("127.0.0.1", 5432), delay=0.010) as proxy:
        ...connect to 127.0.0.1:proxy.port...
        print(proxy.round_trips)

Runs an asyncio loop in a thread of its own; stops with the ``with`` block.
"""

from __future__ import annotations

import asyncio
import threading


class LatencyProxy:
    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.round_trips = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)

    def reset(self) -> None:
        self.round_trips = 0
        self.connections = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        state = {"last": "server"}  # who sent last on this connection
        try:
            await asyncio.gather(self._pump(client_r, server_w, state, "client"),
                                 self._pump(server_r, client_w, state, "server"))
        except asyncio.CancelledError:  # the proxy stops: end quietly (asyncio's
            pass  # start_server callback would report a cancelled connection task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    state: dict[str, str], side: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if side == "client" and data and state["last"] != "client":
                    self.round_trips += 1
                if data:
                    state["last"] = side
                await queue.put((self._loop.time() + self.delay, data))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            sender.cancel()
            writer.close()
