"""What the fault-injection suite breaks, each owned by the test so the machine's shared servers
are never touched: a private RabbitMQ node, a MongoDB wire server, and a TCP proxy in front of
the shared MySQL that can refuse and cut every connection."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from pathlib import Path

from tests.support import free_port, wait_for

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class PrivateRabbitMQ:
    """A RabbitMQ node of our own (own name, ports, cookie and data), stopped at the end."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.node = f"v2m-faults-{self.port}@localhost"
        (folder / "enabled_plugins").write_text("[].\n")  # no management listener on 15672
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (folder / "env.conf").write_text("")  # not the machine's rabbitmq-env.conf
        self.env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(folder),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        with (folder / "server.log").open("wb") as log:  # the node keeps its own copy open
            self.proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, stdout=log, stderr=log
            )
        wait_for(lambda: self.ctl("await_startup", "--timeout", "5"), 90, "the private RabbitMQ")

    def ctl(self, *args: str) -> str:
        """Run rabbitmqctl against our node; raise if it fails."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout or "ok"

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def messages(self) -> dict[str, int]:
        """Messages per queue, ready and unacknowledged together."""
        return self._per_queue("messages")

    def consumers(self) -> dict[str, int]:
        """Consumers per queue."""
        return self._per_queue("consumers")

    def _per_queue(self, column: str) -> dict[str, int]:
        out = self.ctl("list_queues", "name", column, "--quiet", "--no-table-headers")
        return {
            name: int(count) for name, count in (line.split() for line in out.splitlines() if line)
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ctl("stop")
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
