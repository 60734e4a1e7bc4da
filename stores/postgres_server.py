"""A throwaway PostgreSQL cluster: a data directory of its own, listening on a loopback port only.

Used by the tests, the benchmarks and `harnesslab postgres start`. Needs Debian's `postgresql` package
(server binaries under /usr/lib/postgresql/*/bin); as root, the server runs as the `postgres` user.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

from stores.base import StoreError


class PostgresUnavailable(StoreError, RuntimeError):
    """No PostgreSQL server can be started here."""


def server_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    found = candidates[-1] if candidates else shutil.which("initdb")
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package "
            "(`make services` does, as root), or point HARNESSLAB_POSTGRES_DSN at a running server"
        )
    return Path(found).parent


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """`start()` creates the cluster (once) and starts it; `stop()` stops it; `remove()` deletes it."""

    user = "harnesslab"

    def __init__(self, root: str | Path | None = None, port: int | None = None):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="harnesslab-pg-"))
        self.port = port or free_loopback_port()
        self.data = self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        bindir = server_bindir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._hand_to_server_user(self.root)
        if not (self.data / "PG_VERSION").exists():
            self._run(bindir / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=on"
        )
        self._run(bindir / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "-w", "-t", "60", "start")
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        """mode: smart | fast | immediate (immediate is a crash: no shutdown checkpoint)."""
        if (self.data / "postmaster.pid").exists():
            self._run(server_bindir() / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *argv: object) -> None:
        command = [str(a) for a in argv]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def _hand_to_server_user(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root, but there is no `postgres` user to run the server as") from None
        closed = [p for p in path.resolve().parents if not os.stat(p).st_mode & stat.S_IXOTH]
        if closed:
            raise PostgresUnavailable(
                f"the server runs as the postgres user, who cannot reach {path}: {closed[0]} is not searchable "
                "by others; choose a folder under /tmp or another world-searchable place"
            )
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, 0o700)
