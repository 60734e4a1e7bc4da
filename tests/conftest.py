"""Backends every contract suite runs against. A new backend adds one line here."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

import pytest

from sandboxes.local import LocalSandboxProvider
from stores.duckdb import DuckdbStore
from stores.memory import MemoryStore
from stores.sqlite import SqliteStore

STORES: dict[str, Callable[[Path], object]] = {
    "duckdb": lambda tmp: DuckdbStore(tmp / f"{uuid.uuid4().hex}.duckdb"),
    "memory": lambda tmp: MemoryStore(),
    "sqlite": lambda tmp: SqliteStore(tmp / f"{uuid.uuid4().hex}.sqlite"),
}

PROVIDERS: dict[str, Callable[[Path], object]] = {
    "local": lambda tmp: LocalSandboxProvider(root=str(tmp / "sandboxes"), timeout_s=10, output_limit=4000),
}


@pytest.fixture(params=sorted(STORES))
def make_store(request, tmp_path):
    """A factory of fresh stores of one backend; every store it made is closed afterwards."""
    made = []

    def make():
        made.append(STORES[request.param](tmp_path))
        return made[-1]

    yield make
    import asyncio

    for store in made:
        asyncio.run(store.close())


@pytest.fixture
async def store(make_store):
    return make_store()


@pytest.fixture(params=sorted(PROVIDERS))
async def provider(request, tmp_path):
    made = PROVIDERS[request.param](tmp_path)
    yield made
    await made.close()
