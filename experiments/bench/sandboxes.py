"""Sandbox benchmarks: provision and execute round trips per backend, and Docker's executor next to
the SDK's exec_run and the `docker exec` CLI on the same container."""
from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from experiments.bench.targets import target
from experiments.stats import percentile

PROVISION_TARGETS_MS = {"pool(local)": 5, "pool(docker)": 5, "namespace": 30}  # p50


async def timed(action: Callable[[], Awaitable[Any]], repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        await action()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


@dataclass(frozen=True)
class Backend:
    make: Callable[[], Any]  # a new provider
    pooled: bool = False  # a pool: given time to refill between hand-outs; its sandboxes are its inner provider's
    engine: bool = False  # needs the Docker engine; its executor is measured beside exec_run and `docker exec`


def providers(root: str) -> dict[str, Backend]:
    from sandboxes.docker import DockerSandboxProvider
    from sandboxes.local import LocalSandboxProvider
    from sandboxes.namespace import NamespaceSandboxProvider
    from sandboxes.pool import PoolProvider

    return {
        "local": Backend(lambda: LocalSandboxProvider(root=f"{root}/local")),
        "namespace": Backend(lambda: NamespaceSandboxProvider(root=f"{root}/namespace")),
        "docker": Backend(lambda: DockerSandboxProvider(), engine=True),
        "pool(local)": Backend(lambda: PoolProvider(LocalSandboxProvider(root=f"{root}/pool"), size=4), pooled=True),
        "pool(docker)": Backend(lambda: PoolProvider(DockerSandboxProvider(), size=4), pooled=True, engine=True),
    }


async def provision_ms(backend: Backend, repeats: int) -> list[float]:
    """Time to a usable sandbox; a pool is filled first and given time to refill between hand-outs."""
    provider = backend.make()
    try:
        await provider.start()
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            sandbox = await provider.provision()
            timings.append((time.perf_counter() - started) * 1000)
            await sandbox.close()
            await asyncio.sleep(0.3 if backend.pooled else 0)  # let a pool refill
        return timings
    finally:
        await provider.close()


async def execute_ms(backend: Backend, repeats: int) -> dict[str, list[float]]:
    provider = backend.make()
    try:
        sandbox = await provider.provision()
        await sandbox.execute("write_file", {"path": "a.txt", "content": "hello"})
        found = {
            "read_file": await timed(lambda: sandbox.execute("read_file", {"path": "a.txt"}), repeats),
            "bash true": await timed(lambda: sandbox.execute("bash", {"command": "true"}), repeats),
            "bash cat": await timed(lambda: sandbox.execute("bash", {"command": "cat a.txt"}), repeats),
        }
        if backend.engine:
            found.update(await docker_alternatives(provider, sandbox.id, repeats))
        return found
    finally:
        await provider.close()


async def docker_alternatives(provider: Any, container: str, repeats: int) -> dict[str, list[float]]:
    import docker

    client = docker.from_env()
    try:
        target = client.containers.get(container)
        sdk = await timed(lambda: asyncio.to_thread(target.exec_run, ["cat", "/workspace/a.txt"]), repeats)
        cli = await timed(lambda: asyncio.to_thread(
            subprocess.run, ["docker", "exec", container, "cat", "/workspace/a.txt"], capture_output=True), max(5, repeats // 4))
    finally:
        client.close()
    return {"SDK exec_run cat": sdk, "docker exec CLI cat": cli}


async def main(quick: bool) -> None:
    from sandboxes.docker_engine import engine_answers, image_present

    repeats = 10 if quick else 40
    with tempfile.TemporaryDirectory(prefix="harnesslab-bench-sandboxes-") as root:
        os.chmod(root, 0o711)  # local sandboxes run as an unprivileged user, who must reach their workspaces
        makers = providers(root)
        if not (engine_answers() and image_present()):
            print("\n(docker skipped: run `make docker` first)")
            makers = {name: backend for name, backend in makers.items() if not backend.engine}
        await report_provision(makers, repeats)
        await report_execute(makers, repeats * 2)


async def report_provision(makers: dict[str, Backend], repeats: int) -> None:
    print(f"\nsandbox provision, to a usable sandbox ({repeats} each)")
    print(f"  {'backend':<14} {'p50 ms':>9} {'p95 ms':>9}")
    p50 = {}
    for name, backend in makers.items():
        timings = await provision_ms(backend, repeats)
        p50[name] = percentile(timings, 0.5)
        print(f"  {name:<14} {p50[name]:>9.2f} {percentile(timings, 0.95):>9.2f}")
    for name, bound in PROVISION_TARGETS_MS.items():
        print(f"  {target(f'{name} provision p50', p50.get(name), '<=', bound, ' ms')}")


async def report_execute(makers: dict[str, Backend], repeats: int) -> None:
    print(f"\nexecute round trip ({repeats} each)")
    print(f"  {'backend':<14} {'call':<22} {'p50 ms':>9} {'p95 ms':>9}")
    docker_p50 = {}
    for name, backend in makers.items():
        if backend.pooled:
            continue  # a pool's sandboxes are its inner provider's
        for call, timings in (await execute_ms(backend, repeats)).items():
            print(f"  {name:<14} {call:<22} {percentile(timings, 0.5):>9.2f} {percentile(timings, 0.95):>9.2f}")
            if name == "docker":
                docker_p50[call] = percentile(timings, 0.5)
    print("  docker, the executor against exec_run (a bash call includes starting bash, ~1.8 ms on this machine):")
    for call in ("read_file", "bash true", "bash cat"):
        speedup = docker_p50["SDK exec_run cat"] / docker_p50[call] if docker_p50 else None
        print(f"    {target(f'exec_run cat p50 / executor {call} p50', speedup, '>=', 20, 'x')}")
