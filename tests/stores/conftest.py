"""The stores every suite of tests/stores runs against: the shipped backends of tests/conftest.py:STORES (the
harness tests use those too) and the stores of users, OWN: a user's own store runs every suite here by adding one
line to OWN, as examples/my_store.py (docs/guides/store.md) does."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import STORES, store_params
from examples.my_store import CountingStore

OWN: dict[str, Callable[[Path, Any], Any]] = {
    "counting": lambda tmp, request: CountingStore(tmp / f"{uuid.uuid4().hex}.sqlite"),
}
BACKENDS = {**STORES, **OWN}


@pytest.fixture(params=store_params(BACKENDS))
def store_factory(request, tmp_path):
    """Makes fresh, empty stores of one backend; the caller closes them."""
    return lambda: BACKENDS[request.param](tmp_path, request)
