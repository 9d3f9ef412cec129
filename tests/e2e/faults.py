"""What the fault-injection suite breaks, each owned by the test so the machine's shared servers
are never touched: a private RabbitMQ node (``tests.rabbitmq``), a MongoDB wire server, and a TCP
proxy in front of the shared MySQL that can refuse and cut every connection."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from pathlib import Path

from tests.support import free_port, wait_for


class MongoWireServer:
    """An nx-27017 server that can be stopped and started again on the same port and data."""

    def __init__(self, folder: Path, binary: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.binary = folder, binary
        self.port = free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}/video2mp3_faults"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        import pymongo

        self.proc = subprocess.Popen(
            [self.binary, "--db", str(self.folder / "db.sqlite"), "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client: pymongo.MongoClient = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=500)
        try:
            wait_for(lambda: client.admin.command("ping"), 30, "nx-27017 to answer")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def find_nx() -> str | None:
    import sys

    return shutil.which("nx-27017") or shutil.which(
        "nx-27017", path=str(Path(sys.executable).parent)
    )


class TCPProxy:
    """Forwards a local port to ``target``; ``down()`` refuses new connections and cuts the
    open ones, as a network partition would; ``up()`` lets them through again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._open |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    if sock in self._open:
                        self._open.discard(sock)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                        sock.close()
