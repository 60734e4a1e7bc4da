"""The warm pool: ready sandboxes handed out once each, dead ones skipped, refilled, drained on close."""
from __future__ import annotations

import asyncio

from sandboxes.local import LocalSandboxProvider
from sandboxes.pool import PoolProvider


async def test_hands_out_ready_sandboxes_once_each_and_refills(tmp_path):
    pool = PoolProvider(LocalSandboxProvider(root=str(tmp_path)), size=3)
    await pool.start()
    boxes = [await pool.provision() for _ in range(6)]
    assert len({box.id for box in boxes}) == 6 and pool.handed_out >= 3
    await asyncio.gather(*pool._filling)
    assert len(pool._ready) == 3  # refilled behind the hand-outs
    await pool.close()


async def test_a_dead_ready_sandbox_is_never_handed_out(tmp_path):
    pool = PoolProvider(LocalSandboxProvider(root=str(tmp_path)), size=2)
    await pool.start()
    dead = pool._ready[0]
    await dead.close()  # dies while waiting in the pool
    handed = [await pool.provision() for _ in range(2)]
    assert dead.id not in {box.id for box in handed} and pool.discarded == 1
    assert all([await box.alive() for box in handed])
    await pool.close()


async def test_close_drains_every_sandbox(tmp_path):
    pool = PoolProvider(LocalSandboxProvider(root=str(tmp_path / "ws")), size=3)
    await pool.start()
    used = await pool.provision()
    await pool.close()
    assert not await used.alive() and not list((tmp_path / "ws").iterdir())


class Failing(LocalSandboxProvider):
    async def provision(self):
        raise OSError("out of sandboxes")


async def test_a_failing_refill_is_recorded_and_provision_raises_the_real_error(tmp_path):
    import pytest

    pool = PoolProvider(Failing(root=str(tmp_path)), size=2)
    await pool.start()
    assert isinstance(pool.last_error, OSError)
    with pytest.raises(OSError, match="out of sandboxes"):
        await pool.provision()
    await pool.close()




class Unclosable(LocalSandboxProvider):
    """Its sandboxes fail to close; it notes its own close (docker's removes every container of its run)."""

    closed = False

    async def provision(self):
        sandbox = await super().provision()

        async def fail() -> None:
            raise OSError("engine hiccup")

        sandbox.close = fail
        return sandbox

    async def close(self) -> None:
        self.closed = True


async def test_close_closes_the_inner_provider_even_when_a_waiting_sandbox_fails_to_close(tmp_path):
    import pytest

    pool = PoolProvider(Unclosable(root=str(tmp_path)), size=2)
    await pool.start()
    with pytest.raises(OSError, match="engine hiccup"):
        await pool.close()
    assert pool.inner.closed
