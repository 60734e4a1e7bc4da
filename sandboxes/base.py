"""The hands: a Sandbox executes named tools; a provider provisions sandboxes and re-attaches to them."""
from __future__ import annotations

import shlex
import time
from abc import ABC, abstractmethod
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Protocol, Sequence, runtime_checkable

from sandboxes.journal import Journal
from sandboxes.tools import TOOLS, ToolError, ToolSpec, validate_input


class SandboxError(Exception):
    """Base of every error a sandbox raises (a failing tool is not one: it is a ToolResult)."""


class SandboxLost(SandboxError, ConnectionError):
    """The sandbox is gone (killed, crashed, removed); provision a new one."""


class SetupFailed(SandboxError, RuntimeError):
    """Preparing a task's workspace failed."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: str
    is_error: bool = False
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Setup:
    """What a task needs in a fresh sandbox before the brain's first tool call runs."""

    files: Mapping[str, str] = field(default_factory=dict)
    commands: Sequence[str] = ()
    repos: Sequence[Mapping[str, str]] = ()  # {url, dest}: cloned through the credential proxy, before the commands

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Setup:
        meta = meta or {}
        return cls(dict(meta.get("files") or {}), tuple(meta.get("commands") or ()), tuple(meta.get("repos") or ()))


# Clones a repository outside the sandbox (the credential proxy) and returns it as a base64 tar.gz
Fetch = Callable[[str], Awaitable[ToolResult]]


class Sandbox(ABC):
    """One set of hands. Backends implement `_run` and `close`; validation and timing live here."""

    id: str
    hand: str
    journal: Journal | None = None  # where each tool call that starts is recorded, outside the sandbox
    root: Path | None = None  # the host folder holding its workspace, where there is one (local, namespace)

    async def execute(self, name: str, input: Any, key: str | None = None) -> ToolResult:
        """Run tool `name`. Bad input and failing tools come back as `is_error` results, never raised.

        `key` is the call's idempotency key: with a journal, each start of the tool is recorded under it.
        """
        started = time.perf_counter()
        try:
            validate_input(name, input)
            if key is not None and self.journal is not None:
                self.journal.record(key, name, self.id)
            output, is_error = await self._run(name, input)
        except ToolError as exc:
            output, is_error = str(exc), True
        except SandboxLost:  # a ConnectionError, hence an OSError: it must not become a tool result
            raise
        except OSError as exc:
            output, is_error = f"{name} failed: {exc.strerror or exc}", True
        return ToolResult(as_text(output), is_error, (time.perf_counter() - started) * 1000)

    async def prepare(self, setup: Setup, fetch: Fetch | None = None) -> None:
        """Write the task's files, unpack its repositories, run its setup commands: through the sandbox's own tools.

        A repository is cloned outside the sandbox by `fetch`, with credentials the sandbox never sees; only the
        checkout comes in, its remote without credentials."""
        for path, content in setup.files.items():
            await self._must("write_file", {"path": path, "content": content})
        for number, repo in enumerate(setup.repos):
            if fetch is None:
                raise SetupFailed(f"sandbox {self.id}: the setup clones {repo['url']}, which needs the credential proxy (credentials=proxy)")
            archive = await fetch(repo["url"])
            if archive.is_error:
                raise SetupFailed(f"sandbox {self.id}: cloning {repo['url']} failed: {archive.output}")
            staged = f".harnesslab-clone-{number}.b64"
            await self._must("write_file", {"path": staged, "content": archive.output})
            dest = shlex.quote(repo.get("dest") or ".")
            await self._must("bash", {"command": f"mkdir -p {dest} && base64 -d {staged} | tar -xz -C {dest} && rm {staged}"})
        for command in setup.commands:
            await self._must("bash", {"command": command})

    async def _must(self, name: str, input: dict) -> None:
        result = await self.execute(name, input)
        if result.is_error:
            raise SetupFailed(f"sandbox {self.id}: setup step {name} {input.get('path') or input.get('command')!r} failed: {result.output}")

    async def alive(self) -> bool:
        """A cheap check that the sandbox still exists (a pool asks before handing one out)."""
        return True

    @abstractmethod
    async def _run(self, name: str, input: dict) -> tuple[str, bool]:
        """Run a validated tool call; return (output, is_error). Raise SandboxLost if the sandbox is gone."""

    @abstractmethod
    async def close(self) -> None:
        """Destroy the sandbox and everything in it. Idempotent."""


def as_text(output: str) -> str:
    """`output` as valid text: a lone surrogate (a file name's undecodable byte, say) becomes its escape, so
    every log, terminal and model request can encode it."""
    try:
        output.encode("utf-8")
    except UnicodeEncodeError:
        return output.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return output


def effective_timeout(input: Mapping[str, Any], default_s: float, max_s: float) -> float:
    """A bash call's timeout: what it asks for (or the default), never more than the maximum (compared before
    any conversion: a JSON integer too large for a float is just more than the maximum)."""
    return float(min(input.get("timeout", default_s), max_s))


class NotShared(SandboxError, ValueError):
    """A provider asked to share its sandboxes between processes, whose sandboxes cannot outlive their process."""


@dataclass(frozen=True, slots=True)
class WorkerSandboxes:
    """The config of the providers that share one run's sandboxes between processes (SandboxProvider.for_workers)."""

    workers: dict[str, Any]  # each worker's: keeps what it makes, journals every tool call, finds the others' sandboxes
    driver: dict[str, Any]  # the driving process's: reaches the same sandboxes and removes every one as it closes


@runtime_checkable
class SandboxProvider(Protocol):
    """Provisions sandboxes of one kind (`hand`) and cleans up every one of them on `close`.

    A backend subclasses this and implements `provision` and `attach`; the rest has a default. What it declares
    (`isolated`, `sandboxes_outlive_process`, `keep`, `journal`) the runners read, never probe for; every backend
    in tests/conftest.py:PROVIDERS passes tests/sandboxes/test_contract.py, which checks it declares them truthfully.
    """

    hand: str
    isolated: bool = False  # its commands see nothing of the host: its files, network, processes (namespace, docker)
    # a sandbox it makes can outlive the process that made it, for a provider in another process to attach to
    # (a worker's sessions go on in the next worker); made so with the options `for_workers` gives
    sandboxes_outlive_process: bool = False
    keep: bool = False  # `close` leaves the sandboxes it made (another process checks or goes on with them)
    journal: Journal | None = None  # where each tool call that starts is recorded, outside the sandboxes

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return DEFAULT_TOOLS

    async def start(self) -> None:
        """Get ready before the first session is timed (an engine's client, a warm pool). Default: nothing to do."""

    @abstractmethod
    async def provision(self) -> Sandbox: ...

    @abstractmethod
    async def attach(self, sandbox_id: str) -> Sandbox:
        """Re-attach to a live sandbox by id (another brain's hands); SandboxLost if it is gone."""

    async def close(self) -> None:
        """Remove every sandbox this provider made (unless it `keep`s them). Default: nothing to remove."""

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], journal: Path) -> AsyncIterator[WorkerSandboxes]:
        """How the providers of several processes (a run's workers and its driver) share sandboxes, from the
        provider's config `options` (its constructor options, `_target_` too if given, passed through): every
        tool call that starts is recorded in `journal`, and whatever the run's own place for its sandboxes needs
        (a root, a label) exists until the context exits.

        Raises NotShared, the default, for a provider whose sandboxes cannot outlive their process."""
        raise NotShared(f"sandbox {cls.__module__}.{cls.__qualname__}: its sandboxes cannot outlive the process that "
                        "made them, which worker processes need; use sandbox=local, namespace or docker (or a pool of one)")
        yield  # an async generator, for asynccontextmanager


class ProviderOver(SandboxProvider):
    """A provider over another (`inner`), whose sandboxes are the inner provider's: what it declares is the inner's."""

    def __init__(self, inner: SandboxProvider):
        self.inner, self.hand = inner, inner.hand

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return self.inner.tools

    @property
    def isolated(self) -> bool:
        return self.inner.isolated

    @property
    def sandboxes_outlive_process(self) -> bool:
        return self.inner.sandboxes_outlive_process

    @property
    def keep(self) -> bool:
        return self.inner.keep

    @property
    def journal(self) -> Journal | None:
        return self.inner.journal


def worker_sandboxes(options: dict[str, Any], journal: Path, **place: Any) -> WorkerSandboxes:
    """What `for_workers` gives for a provider whose `keep` option leaves its sandboxes for other processes: the
    workers keep theirs, the driver keeps nothing; both journal to `journal` and share the options in `place`."""
    workers = {**options, "keep": True, "journal": str(journal), **place}
    return WorkerSandboxes(workers, {**workers, "keep": False})


DEFAULT_TOOLS: tuple[ToolSpec, ...] = tuple(TOOLS.values())
