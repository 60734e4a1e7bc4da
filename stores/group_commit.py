"""Group commit: requests that arrive while a batch commits are committed together in the next one."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

Request = TypeVar("Request")

# Commits a batch in one transaction; returns one outcome per request (a result, or the exception
# that request alone failed with). Raising fails the whole batch.
CommitBatch = Callable[[Sequence[Request]], Awaitable[Sequence[Any]]]


class GroupCommit(Generic[Request]):
    """`in_flight`: batches that may commit at once (a server store with row locks and a connection pool can
    take several; an embedded one has a single writer). A request waits for at most the batches ahead of it."""

    def __init__(self, commit: CommitBatch, max_batch: int = 1024, in_flight: int = 1):
        if max_batch < 1 or in_flight < 1:
            raise ValueError(f"max_batch and in_flight must be at least 1, got {max_batch} and {in_flight}")
        self._commit, self._max_batch, self._in_flight = commit, max_batch, in_flight
        self._queue: list[tuple[Request, asyncio.Future]] = []
        self._flushers: set[asyncio.Task] = set()

    async def submit(self, request: Request) -> Any:
        """Resolves once the batch holding `request` has committed (or raises what it failed with)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((request, future))
        if sum(not flusher.done() for flusher in self._flushers) < self._in_flight:  # a done one may await its discard
            flusher = loop.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def drain(self) -> None:
        """Wait until every submitted request is committed (before closing the store)."""
        while running := {flusher for flusher in self._flushers if not flusher.done()}:
            await asyncio.wait(running)

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                outcomes: Sequence[Any] = await self._commit([request for request, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch + self._queue:
                    future.cancel()
                raise
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes):
                if future.done():  # its caller was cancelled; the commit stands
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
