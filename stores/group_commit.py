"""Group commit: requests that arrive while a batch commits are committed together in the next one."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

Request = TypeVar("Request")

# Commits a batch in one transaction; returns one outcome per request (a result, or the exception
# that request alone failed with). Raising fails the whole batch.
CommitBatch = Callable[[Sequence[Request]], Awaitable[Sequence[Any]]]


class GroupCommit(Generic[Request]):
    def __init__(self, commit: CommitBatch, max_batch: int = 1024):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._commit, self._max_batch = commit, max_batch
        self._queue: list[tuple[Request, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def submit(self, request: Request) -> Any:
        """Resolves once the batch holding `request` has committed (or raises what it failed with)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await future

    async def drain(self) -> None:
        """Wait until every submitted request is committed (before closing the store)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})

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
