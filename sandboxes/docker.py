"""Docker hands: one hardened container per sandbox, tool calls over an executor's attached stream.

Containers run with no network, every capability dropped, no-new-privileges, a read-only root, tmpfs
for /workspace and /tmp, a non-root user, pids/memory/CPU limits and capped logs. The executor
(sandboxes/executor.py and the tool code it shares with the local backend) travels in the container's
command line, so nothing is bind-mounted and DOCKER_HOST may point at any engine. A container that
dies ends its stream: SandboxLost, and a lost sandbox's container is removed at once. A provider that keeps
nothing has a reaper, a process of its own that removes the provider's containers when the provider's process
ends, SIGKILL included (`python -m sandboxes.docker_engine`).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import struct
import time
import uuid
import zipfile
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from sandboxes.base import Sandbox, SandboxLost, SandboxProvider, WorkerSandboxes, effective_timeout, worker_sandboxes
from processes.children import Child
from sandboxes.docker_engine import LABEL, OWNER, engine_env, engine_if_it_answers, ensure_image, prune, remove_container
from sandboxes.journal import Journal
from sandboxes.process import process_identity
from sandboxes.tools import ToolError

log = logging.getLogger(__name__)

_BOOT = (
    "import base64,sys;p='/tmp/harnesslab-executor.zip';open(p,'wb').write(base64.b64decode(sys.argv[1]));"
    "sys.path.insert(0,p);from sandboxes.executor import main;main()"
)
_SHIPPED = ("__init__.py", "tools.py", "process.py", "workspace.py", "executor.py")
_REPLY_GRACE_S = 15.0  # beyond a call's own timeout, before a silent executor counts as lost
MIN_REPLY_BYTES = 16 << 20  # a reply line may hold this plus 6 bytes per byte of output (its worst JSON escape)
_STDERR_KEPT = 4096  # bytes of the executor's stderr kept, to say why its stream ended


@cache
def executor_payload() -> str:
    """The executor and the tool code it runs, zipped and base64-encoded for the command line."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in _SHIPPED:
            archive.write(Path(__file__).with_name(name), f"sandboxes/{name}")
    return base64.b64encode(buffer.getvalue()).decode()


class _Channel:
    """JSON lines to the executor's stdin; its stdout comes back in Docker's 8-byte-header frames.

    The container's stdin outlives any one attach connection, so a dead worker's hands live on for
    the next brain; a reply still on its way to a dead attach can reach the next one, so replies
    carry the request's unique id. Every line that is not a JSON object with that id is dropped: docker-init
    (PID 1) holds the same stream, and a command may write into it there. The executor starts each reply on
    a line of its own, so bytes written without a newline end on a line of theirs. What is held is bounded: a
    line longer than `max_line` fails the call waiting for it (the rest of that line is dropped as it
    arrives), and only the tail of stderr is kept.
    """

    def __init__(self, stream: Any, max_line: int):
        # docker-py's stream object keeps the HTTP response alive; once that is collected, it closes the
        # socket under us (an intermittent EBADF): so the channel holds the stream, and uses its socket
        self.stream, self.sock = stream, getattr(stream, "_sock", stream)
        self.sock.setblocking(False)
        self.max_line = max_line
        self.header, self.kind, self.left = bytearray(), 1, 0  # the frame being read: its kind, its bytes to come
        self.stdout, self.stderr = bytearray(), bytearray()
        self.skipping = False  # dropping the rest of a line that was too long
        self.turn = asyncio.Lock()  # one call at a time on an executor

    async def send(self, payload: dict) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, (json.dumps(payload) + "\n").encode())

    async def reply(self, request_id: str) -> dict:
        """The reply to `request_id`. Every other line is dropped: a stale reply to a call made over an earlier
        attach, or whatever a command wrote into the stream through docker-init (PID 1), which holds it too."""
        return await self.next_message(lambda message: message.get("id") == request_id)

    async def next_message(self, wanted: Callable[[dict], bool]) -> dict:
        """The next line that is a JSON object `wanted` accepts; every other line is dropped."""
        while True:
            try:
                message = json.loads(await self.line())
            except ValueError:
                continue
            if isinstance(message, dict) and wanted(message):
                return message

    async def line(self) -> bytes:
        """The next line. ToolError if it is longer than `max_line`; SandboxLost if the stream ends."""
        loop = asyncio.get_running_loop()
        while (end := self._line_end()) < 0:
            if len(self.stdout) > self.max_line:
                self.stdout.clear()
                self.skipping = True
                raise self._too_long()
            data = await loop.sock_recv(self.sock, 1 << 16)
            if not data:
                raise SandboxLost(f"the container's stream ended{': ' + self.stderr.decode(errors='replace')[-300:] if self.stderr else ''}")
            self._unframe(data)
        line = bytes(self.stdout[:end])
        del self.stdout[: end + 1]
        if len(line) > self.max_line:
            raise self._too_long()
        return line

    def _too_long(self) -> ToolError:
        return ToolError(f"the sandbox's reply was longer than {self.max_line} bytes, the most the harness reads")

    def _line_end(self) -> int:
        """Where the first whole line held ends, or -1; the rest of a line that was too long is dropped first."""
        end = self.stdout.find(b"\n")
        while self.skipping:
            if end < 0:
                self.stdout.clear()
                return -1
            del self.stdout[: end + 1]
            self.skipping, end = False, self.stdout.find(b"\n")
        return end

    def _unframe(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.left == 0:  # a frame header, perhaps split across reads
                taken = 8 - len(self.header)
                self.header += view[:taken]
                view = view[taken:]
                if len(self.header) == 8:
                    self.kind, self.left = self.header[0], struct.unpack(">I", self.header[4:8])[0]
                    self.header.clear()
                continue
            chunk, view = view[: self.left], view[self.left :]
            self.left -= len(chunk)
            if self.kind == 1:
                self.stdout += chunk
            else:
                self.stderr = (self.stderr + chunk)[-_STDERR_KEPT:]

    def close(self) -> None:
        """Close the connection now: the stream (docker-py's file object) holds a reference that keeps the socket
        open until the garbage collector runs, so both are closed."""
        with contextlib.suppress(OSError):
            self.stream.close()
        self.sock.close()


class DockerSandbox(Sandbox):
    hand = "docker"

    def __init__(self, provider: DockerSandboxProvider, container_id: str, channel: _Channel):
        self.provider, self.id, self.channel = provider, container_id, channel

    async def _run(self, name: str, input: dict) -> tuple[str, bool]:
        try:
            return await self._call(name, input)
        except SandboxLost:  # never used again (the log says lost): its container goes now, not at the run's end
            await self.provider.discard(self.id)
            raise

    async def _call(self, name: str, input: dict) -> tuple[str, bool]:
        timeout = effective_timeout(input, self.provider.timeout_s, self.provider.max_timeout_s)
        async with self.channel.turn:
            request = {"id": uuid.uuid4().hex, "name": name, "input": input, "timeout": timeout, "limit": self.provider.output_limit}
            try:
                await self.channel.send(request)
                reply = await asyncio.wait_for(self.channel.reply(request["id"]), timeout + _REPLY_GRACE_S)
            except (OSError, asyncio.TimeoutError) as exc:
                raise SandboxLost(f"sandbox {self.id[:12]}: {type(exc).__name__}: {exc}") from None
        if not isinstance(reply.get("output"), str) or not isinstance(reply.get("is_error"), bool):
            raise SandboxLost(f"sandbox {self.id[:12]}: the executor's reply lacks output or is_error: {str(reply)[:200]}")
        return reply["output"], reply["is_error"]

    async def alive(self) -> bool:
        return await self.provider.running(self.id)

    async def close(self) -> None:
        await self.provider.remove(self.id)


class DockerSandboxProvider(SandboxProvider):
    hand = "docker"
    isolated = True
    sandboxes_outlive_process = True  # a container runs on the engine, whoever made it: with `keep`, it stays

    def __init__(
        self,
        image: str | None = None,
        timeout_s: float = 30.0,
        max_timeout_s: float = 600.0,
        output_limit: int = 30_000,
        memory: str = "512m",
        cpus: float = 1.0,
        pids_limit: int = 256,
        workspace_size: str = "256m",
        keep: bool = False,
        run_label: str | None = None,
        journal: str | None = None,
        owner: str | None = None,
    ):
        self.image, self.timeout_s, self.max_timeout_s, self.output_limit = image, timeout_s, max_timeout_s, output_limit
        self.memory, self.cpus, self.pids_limit, self.workspace_size = memory, cpus, pids_limit, workspace_size
        self.run_label = run_label or uuid.uuid4().hex  # every container of this provider (or run), for cleanup
        self.owner = owner or process_identity()  # the process whose run the containers belong to (prune asks)
        self.keep = keep  # leave containers running on close: workers hand sessions to one another
        self.journal = Journal(journal) if journal else None
        self.reply_limit = MIN_REPLY_BYTES + 6 * output_limit  # bytes of one reply line held, at most
        self._api: Any = None
        self._connecting = asyncio.Lock()
        self._reaper: Child | None = None  # removes this provider's containers if its process dies (unless `keep`)
        self._channels: dict[str, _Channel] = {}  # container id -> its one attach connection
        self._creating: set[asyncio.Future] = set()  # containers the engine is creating for this provider

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], journal: Path) -> AsyncIterator[WorkerSandboxes]:
        """Containers under the run label given (sandbox.run_label), or one of the run's own."""
        yield worker_sandboxes(options, journal, run_label=options.get("run_label") or f"faults-{time.time_ns()}",
                               owner=options.get("owner") or process_identity())  # a killed worker's go on

    async def start(self) -> None:
        """Make sure the engine answers and the image exists (built offline if not)."""
        await self._client()

    async def provision(self) -> DockerSandbox:
        api = await self._client()
        # cancelled while the engine creates it, the container still appears: close waits for the creation
        # to end, and its label lets close find the container it never registered
        creating = asyncio.ensure_future(asyncio.to_thread(self._create, api))
        self._creating.add(creating)
        creating.add_done_callback(self._creating.discard)
        container = await asyncio.shield(creating)
        try:
            sock = await asyncio.to_thread(self._attach, api, container)
            await asyncio.to_thread(api.start, container)
            channel = _Channel(sock, self.reply_limit)
            await asyncio.wait_for(channel.next_message(lambda message: message.get("ready") is True), 30)
        except BaseException:
            with contextlib.suppress(Exception):  # the original failure is what the caller must see
                await self.remove(container)
            raise
        self._channels[container] = channel
        return self._sandbox(container, channel)

    async def attach(self, sandbox_id: str) -> DockerSandbox:
        """Another handle on a live container: this process's channel to it, or a new attach."""
        api = await self._client()
        if not await self.running(sandbox_id):
            await self.discard(sandbox_id)  # exited, it is lost for good: the log will say so, and it is replaced
            raise SandboxLost(f"sandbox {sandbox_id[:12]} is not running")
        if sandbox_id not in self._channels:
            self._channels[sandbox_id] = _Channel(await asyncio.to_thread(self._attach, api, sandbox_id), self.reply_limit)
        return self._sandbox(sandbox_id, self._channels[sandbox_id])

    def _sandbox(self, container_id: str, channel: _Channel) -> DockerSandbox:
        sandbox = DockerSandbox(self, container_id, channel)
        sandbox.journal = self.journal
        return sandbox

    async def running(self, container_id: str) -> bool:
        import docker

        try:
            state = await asyncio.to_thread(lambda: self._api.inspect_container(container_id)["State"])
        except docker.errors.NotFound:
            return False
        return bool(state.get("Running"))

    async def remove(self, container_id: str) -> None:
        self._forget(container_id)
        api = self._api or await asyncio.to_thread(engine_if_it_answers)  # closed meanwhile: a client for this once
        if api is not None:
            await asyncio.to_thread(remove_container, api, container_id)
        if api is not None and api is not self._api:
            await asyncio.to_thread(api.close)

    async def discard(self, container_id: str) -> None:
        """Remove a lost sandbox's container; a failure is logged, not raised (the caller reports the loss, and
        close prunes whatever is left)."""
        try:
            await self.remove(container_id)
        except Exception as exc:
            log.warning("could not remove lost container %s: %s: %s", container_id[:12], type(exc).__name__, exc)

    def _forget(self, container_id: str) -> None:
        channel = self._channels.pop(container_id, None)
        if channel is not None:
            channel.close()

    async def close(self) -> None:
        """Remove every container with this provider's run label (unless `keep`), whoever made it (this process,
        a provision cancelled half-way, the workers of a run this provider drives): none outlives its run."""
        for container_id in list(self._channels):
            self._forget(container_id)
        await asyncio.gather(*self._creating, return_exceptions=True)  # their containers exist once they end
        api, self._api = self._api, None
        if not self.keep:
            api = api or await asyncio.to_thread(engine_if_it_answers)
            if api is not None:
                await asyncio.to_thread(prune, api, {f"{LABEL}.provider": self.run_label})
        if api is not None:
            await asyncio.to_thread(api.close)
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            await asyncio.to_thread(reaper.stop)

    async def _client(self) -> Any:
        async with self._connecting:
            if self._api is None:
                import docker

                self.image = self.image or await asyncio.to_thread(ensure_image)
                if not self.keep and self._reaper is None:  # before the first container exists
                    self._reaper = Child("sandboxes.docker_engine", {"run_label": self.run_label, "engine": engine_env()})
                    await asyncio.to_thread(self._reaper.start)
                self._api = docker.from_env().api  # DOCKER_HOST and friends, as the docker CLI reads them
        return self._api

    def _create(self, api: Any) -> str:
        from docker.types import LogConfig

        host = api.create_host_config(
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], read_only=True,
            init=True,  # docker-init as PID 1 reaps orphans: killed processes (a fork bomb's) give their pids back
            tmpfs={"/workspace": f"rw,exec,size={self.workspace_size},uid=65534,gid=65534,mode=0755",
                   "/tmp": "rw,exec,size=64m,mode=1777"},
            pids_limit=self.pids_limit, mem_limit=self.memory, nano_cpus=int(self.cpus * 1e9),
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
        )
        created = api.create_container(
            self.image, command=["python3", "-c", _BOOT, executor_payload()], user="65534:65534",
            # detach: StdinOnce stays false, so the executor outlives a closed attach (a dead worker's)
            working_dir="/workspace", stdin_open=True, detach=True, environment={"PATH": "/usr/local/bin:/usr/bin:/bin"},
            labels={LABEL: "1", f"{LABEL}.provider": self.run_label, OWNER: self.owner}, host_config=host,
        )
        return created["Id"]

    @staticmethod
    def _attach(api: Any, container: str) -> Any:
        return api.attach_socket(container, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
