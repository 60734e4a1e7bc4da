"""Backends every contract suite runs against. A new backend adds one line here.

Engines: a test that needs PostgreSQL (or later Docker) skips when it is missing, unless
REQUIRE_POSTGRES=1 (REQUIRE_DOCKER=1) is set, as in CI: then it fails.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Callable

import warnings

import pytest

from examples.my_sandbox import CountingProvider
from experiments.tasks import policy_book
from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import LatencyProfile
from sandboxes.local import LocalSandboxProvider
from stores.duckdb import DuckdbStore
from stores.memory import MemoryStore
from stores.postgres import PostgresStore
from stores.postgres_server import LocalPostgres, PostgresUnavailable
from stores.sqlite import SqliteStore


def require(engine: str, why: str) -> None:
    """Skip, or fail where the environment says this engine must be there."""
    variable = f"REQUIRE_{engine.upper()}"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{engine} is required ({variable}=1) but unavailable: {why}")
    pytest.skip(f"{engine} unavailable: {why}")


_MADE_BASETEMP = pytest.StashKey[str]()


def pytest_configure(config):
    """This run's temporary folders outside /tmp/pytest-of-<user>, which every pytest process that starts makes 0700
    again: a sandbox user could then no longer reach a workspace made under tmp_path."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        import tempfile

        config.option.basetemp = config.stash[_MADE_BASETEMP] = tempfile.mkdtemp(prefix="harnesslab-tests-")
        os.chmod(config.option.basetemp, 0o711)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session, exitstatus):
    """The temporary folders pytest_configure made for this run are removed if it passed, kept if it did not."""
    base = session.config.stash.get(_MADE_BASETEMP, None)
    if base is None:
        return
    if exitstatus != pytest.ExitCode.OK:
        return _report(session.config, f"this run's temporary folders are kept: {base}")
    from sandboxes.tree_removal import remove_tree

    try:
        remove_tree(base)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _report(session.config, f"could not remove this run's temporary folders {base}: {exc}")


_REPORT = pytest.StashKey[str]()


def _report(config, line: str) -> None:
    """`line` at the end of the terminal summary (which comes after pytest_sessionfinish), else printed now."""
    if config.pluginmanager.has_plugin("terminalreporter"):
        config.stash[_REPORT] = line
    else:
        print(line)


def pytest_terminal_summary(terminalreporter, config):
    if line := config.stash.get(_REPORT, None):
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def reachable_tmp_path(request, tmp_path_factory):
    """Local sandboxes run commands as an unprivileged user, who must pass through to workspaces under tmp_path
    (pytest makes its folders 0700)."""
    base = tmp_path_factory.getbasetemp()
    folders = [base, base.parent] + ([request.getfixturevalue("tmp_path")] if "tmp_path" in request.fixturenames else [])
    for folder in folders:
        folder.chmod(folder.stat().st_mode | 0o011)


@pytest.fixture(scope="session")
def postgres_dsn():
    """HARNESSLAB_POSTGRES_DSN if set, else a throwaway local cluster for this test session."""
    if dsn := os.environ.get("HARNESSLAB_POSTGRES_DSN"):
        yield dsn
        return
    server = LocalPostgres()
    try:
        dsn = server.start()
    except PostgresUnavailable as exc:
        server.remove()
        require("postgres", str(exc))
    yield dsn
    server.remove()


def _postgres(tmp: Path, request: Any) -> PostgresStore:
    return PostgresStore(request.getfixturevalue("postgres_dsn"), schema=f"t_{uuid.uuid4().hex[:12]}")


STORES: dict[str, Callable[[Path, Any], Any]] = {
    "memory": lambda tmp, request: MemoryStore(),
    "sqlite": lambda tmp, request: SqliteStore(tmp / f"{uuid.uuid4().hex}.sqlite"),
    "duckdb": lambda tmp, request: DuckdbStore(tmp / f"{uuid.uuid4().hex}.duckdb"),
    "postgres": _postgres,
}
ENGINE_MARKS = {"postgres": pytest.mark.postgres}


def store_params(names=STORES):
    return [pytest.param(name, marks=ENGINE_MARKS.get(name, ())) for name in sorted(names)]


@pytest.fixture(params=store_params())
def store_factory(request, tmp_path):
    """Makes fresh, empty stores of one backend; the caller closes them."""
    return lambda: STORES[request.param](tmp_path, request)


@pytest.fixture
async def store(store_factory):
    made = store_factory()
    yield made
    await made.close()


def _namespace(tmp: Path):
    from sandboxes.namespace import NamespaceSandboxProvider

    return NamespaceSandboxProvider(root=str(tmp / "sandboxes"), timeout_s=10, output_limit=4000)


@pytest.fixture(scope="session")
def docker_image():
    """The sandbox image on a running engine (`make docker` sets both up; tests never start engines)."""
    from sandboxes.docker_engine import engine_answers, image_present, image_tag

    if not engine_answers():
        require("docker", "no Docker engine answers `docker info` (run `make docker`)")
    if not image_present():
        require("docker", f"the sandbox image {image_tag()} is not built (run `make docker`)")
    return image_tag()


def _docker(tmp: Path, request: Any):
    from sandboxes.docker import DockerSandboxProvider

    return DockerSandboxProvider(image=request.getfixturevalue("docker_image"), timeout_s=10, output_limit=4000)


def _pool(tmp: Path):
    from sandboxes.pool import PoolProvider

    return PoolProvider(LocalSandboxProvider(root=str(tmp / "sandboxes"), timeout_s=10, output_limit=4000), size=2)


PROVIDERS: dict[str, Callable[[Path, Any], object]] = {
    "local": lambda tmp, request: LocalSandboxProvider(root=str(tmp / "sandboxes"), timeout_s=10, output_limit=4000),
    "namespace": lambda tmp, request: _namespace(tmp),
    "pool": lambda tmp, request: _pool(tmp),
    "docker": _docker,
    "counting": lambda tmp, request: CountingProvider(  # a user's own (docs/guides/sandbox.md)
        LocalSandboxProvider(root=str(tmp / "sandboxes"), timeout_s=10, output_limit=4000)),
}
ENGINE_MARKS["docker"] = pytest.mark.docker


@pytest.fixture(params=[pytest.param(name, marks=ENGINE_MARKS.get(name, ())) for name in sorted(PROVIDERS)])
async def provider(request, tmp_path):
    made = PROVIDERS[request.param](tmp_path, request)
    yield made
    await made.close()


# A Messages-API emulator served on the test's event loop, for the model tests.
QUICK = LatencyProfile(base_ttft_ms=2, prefill_ms_per_1k_tokens=0, output_tokens_per_s=0, jitter_sigma=0)
GREETING = "Create a file named hello.txt containing exactly one line: hello, harnesslab"
ARITHMETIC = "What is 17 multiplied by 23? Answer with the number only."


@pytest.fixture
async def emulator():
    server = EmulatorServer(policy_book(), QUICK)
    await server.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield server
    await server.stop()
    assert not [str(w.message) for w in caught if "anthropic" in (w.filename or "")], "the SDK warned"
