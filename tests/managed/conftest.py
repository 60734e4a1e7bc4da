"""A `harnesslab serve` of the test's own, on a free loopback port, in a thread of its own (so that both the SDK's
sync and async clients can drive it), over the default parts: the emulated brain, local hands, an SQLite store."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Coroutine

import anthropic
import pytest

from experiments.cli.handlers import served
from experiments.run.job import compose_config
from experiments.run.parts import Parts
from managed.server import ManagedServer

ENVIRONMENT_KEY = "envkey_test"  # what the tests' servers take on their work queues


@dataclass
class Served:
    server: ManagedServer
    parts: Parts
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return self.server.url

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run `work` on the server's loop (its store and sandboxes live there)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def client(self, key: str = "any-key") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, _strict_response_validation=True)

    def async_client(self, key: str = "any-key") -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0, _strict_response_validation=True)


def serve_in_thread(overrides: list[str]):
    """Start a server over the parts `overrides` choose; yield it; stop it."""
    cfg = compose_config(["+serve=default", *overrides], groups=("harness", "model", "sandbox", "store", "context"))
    ready: Future = Future()
    stop = threading.Event()

    async def main() -> None:
        try:
            async with served(cfg, 0, ENVIRONMENT_KEY) as (server, parts):
                ready.set_result(Served(server, parts, asyncio.get_running_loop()))
                while not stop.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture
def api(tmp_path):
    yield from serve_in_thread([f"store.path={tmp_path}/serve.sqlite"])


@pytest.fixture
def keyed_api(tmp_path):
    yield from serve_in_thread([f"store.path={tmp_path}/serve.sqlite", "serve.api_keys=[sk-right]"])


@pytest.fixture
def failing_api(tmp_path):
    yield from serve_in_thread([f"store.path={tmp_path}/serve.sqlite", "harness.max_turns=1"])
