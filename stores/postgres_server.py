"""A throwaway PostgreSQL cluster: a data directory of its own, listening on a loopback port only.

Used by the tests, the benchmarks and `harnesslab postgres start`. Needs Debian's `postgresql` package
(server binaries under /usr/lib/postgresql/*/bin); as root, the server runs as the `postgres` user.
The server is a child of the process that starts it and ends with it, even when that process is SIGKILLed
(a fast shutdown, PR_SET_PDEATHSIG); `detach=True` leaves it running on its own (`harnesslab postgres start`).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from processes.children import dies_with_this_process
from stores.base import StoreError

READY_WAIT_S = 60.0


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

    def __init__(self, root: str | Path | None = None, port: int | None = None, detach: bool = False):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="harnesslab-pg-"))
        self.port = port or free_loopback_port()
        self.data = self.root / "data"
        self.detach = detach  # the server outlives this process (pg_ctl daemonizes it); else it is this one's child
        self.server: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        if self.server is not None and self.server.poll() is None:
            return self.dsn
        bindir = server_bindir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._hand_to_server_user(self.root)
        if not (self.data / "PG_VERSION").exists():
            self._run(bindir / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = [
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.root), "-c", "max_connections=200",
            "-c", "fsync=on", "-c", "synchronous_commit=on",
        ]
        if self.detach:
            self._run(bindir / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", " ".join(options),
                      "-w", "-t", str(int(READY_WAIT_S)), "start")
        else:
            self._serve(bindir, options)
        return self.dsn

    def _serve(self, bindir: Path, options: list[str]) -> None:
        """Run the server as this process's child, which a fast shutdown (SIGINT) ends when this process ends."""
        log = self.root / "server.log"
        with open(log, "ab") as output:
            if os.geteuid() == 0:  # pg_ctl, run as the server's user, may append to it later
                os.chown(log, _postgres_user().pw_uid, _postgres_user().pw_gid)
            self.server = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(self.data), *options], stdin=subprocess.DEVNULL, stdout=output,
                stderr=output, start_new_session=True, preexec_fn=dies_with_this_process(signal.SIGINT),
                **self._server_user(),
            )
        deadline = time.monotonic() + READY_WAIT_S
        while not self._ready():
            if self.server.poll() is not None or time.monotonic() > deadline:
                self.server.kill()
                self.server.wait()
                self.server = None
                raise PostgresUnavailable(f"postgres did not start within {READY_WAIT_S:g} s:\n{self._log_tail()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        """The server's lock file names it and says it accepts connections (as `pg_ctl -w` reads it)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self.server.pid) and lines[7].strip() == "ready"

    def stop(self, mode: str = "fast") -> None:
        """mode: smart | fast | immediate (immediate is a crash: no shutdown checkpoint)."""
        if (self.data / "postmaster.pid").exists():
            self._run(server_bindir() / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")
        if self.server is not None:  # our child: stopped (pg_ctl waited for it to exit) or dead, it leaves no zombie
            self.server.wait(timeout=READY_WAIT_S)
            self.server = None

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *argv: object) -> None:
        command = [str(a) for a in argv]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def _server_user(self) -> dict[str, Any]:
        """Popen's options to run the server as the postgres user (as root: initdb and postgres refuse root)."""
        if os.geteuid() != 0:
            return {}
        entry = _postgres_user()
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _hand_to_server_user(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = _postgres_user()
        closed = [p for p in path.resolve().parents if not os.stat(p).st_mode & stat.S_IXOTH]
        if closed:
            raise PostgresUnavailable(
                f"the server runs as the postgres user, who cannot reach {path}: {closed[0]} is not searchable "
                "by others; choose a folder under /tmp or another world-searchable place"
            )
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, 0o700)


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root, but there is no `postgres` user to run the server as") from None
