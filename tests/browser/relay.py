"""A switchable, byte-counting TCP relay for browser tests and benchmarks: the database
"going down" for real (tests/browser/test_db_recovery.py), and the bytes a page really
received on the wire (benchmarks/dashboard_map.py)."""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    """A switchable TCP relay 127.0.0.1:<port> → ``target``: while off, nothing listens on
    the port (connection refused) and every connection it carried has been cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:  # reserve a port number, reused on every switch-on
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._listener: socket.socket | None = None
        #: bytes relayed from the target to the clients (what a browser received on the
        #: wire: headers, compressed WebSocket frames and all), since the last reset
        self.received = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        if self._listener is not None:
            # shutdown first: close() alone does not wake the thread blocked in accept(),
            # and the port would keep listening
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # switched off
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b, down in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, down), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)
                if down:
                    with self._lock:
                        self.received += len(chunk)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
