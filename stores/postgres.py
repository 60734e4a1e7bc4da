"""PostgreSQL store: psycopg 3 (async) with a connection pool, group commit, LISTEN/NOTIFY.

A batch of writes commits in one statement, one round trip: `expect` is enforced under a row lock on the
session (SELECT ... FOR UPDATE) and the primary key (session_id, position) forbids duplicates, so writers in
several processes can share one database.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import select
import tempfile
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from stores.base import (
    Conflict, Event, SessionExists, SessionInfo, SessionNotFound, SessionStore, StoreError, StoreUnavailable, WorkerStore,
    check_session_id, decode_event, slice_bounds, status_after,
)
from stores.batch import BatchWriter, Write, commit_apart
from stores.postgres_server import LocalPostgres

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStore(BatchWriter, SessionStore):
    shared_between_processes = True  # a session's row lock decides between writers, whichever process

    def __init__(
        self,
        dsn: str | None = None,
        schema: str = "harnesslab",
        pool_size: int = 10,
        group_commit: bool = True,
        max_batch: int = 1024,
        connect_timeout_s: float = 10.0,
        commits_in_flight: int = 4,
    ):
        self.dsn = dsn or os.environ.get("HARNESSLAB_POSTGRES_DSN")
        if not self.dsn:
            raise StoreError(
                "store=postgres needs a DSN: set HARNESSLAB_POSTGRES_DSN or store.dsn=postgresql://... "
                "(`harnesslab postgres start` runs a throwaway local server and prints its DSN)"
            )
        if not _IDENTIFIER.match(schema):
            raise StoreError(f"schema {schema!r} must be a lowercase SQL identifier like 'harnesslab'")
        if not 1 <= commits_in_flight <= pool_size:
            raise StoreError(f"commits_in_flight={commits_in_flight} must be between 1 and pool_size ({pool_size})")
        # batches on disjoint sessions commit side by side (rows are locked in id order: no deadlock); one on a
        # session another holds waits for its lock and sees its length, so `expect` still decides
        super().__init__(self._commit, group_commit, max_batch, commits_in_flight)
        self.schema, self.pool_size, self.connect_timeout_s = schema, pool_size, connect_timeout_s
        self.channel = f"{schema}_events"
        self._commit_statement = _commit_sql(schema)
        self._pool: Any = None
        self._closing: set[asyncio.Task] = set()  # pools given up on after a lost server, closing
        self._pool_lock = asyncio.Lock()
        self._listening: asyncio.Task | None = None
        self._waiters: dict[str, list[tuple[int, asyncio.Future]]] = {}

    # -- the SessionStore protocol (create_session and append: BatchWriter) -------------------------

    async def events(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Event]:
        check_session_id(session_id)
        async with self._connection() as conn:
            if start >= 0 and (stop is None or stop >= 0):  # bounds that need no length: one round trip (a wake)
                lo, hi = start, stop
            else:
                lo, hi = slice_bounds((await self._session_row(conn, session_id))[2], start, stop)
            cur = await conn.execute(
                f"SELECT position, type, data, ts, v FROM {self.schema}.events "
                "WHERE session_id = %s AND position >= %s AND (%s::bigint IS NULL OR position < %s) ORDER BY position",
                (session_id, lo, hi, hi),
            )
            rows = await cur.fetchall()
            if not rows:
                await self._session_row(conn, session_id)  # raises SessionNotFound for a session that does not exist
            return [decode_event(session_id, *row) for row in rows]

    async def session(self, session_id: str) -> SessionInfo:
        check_session_id(session_id)
        async with self._connection() as conn:
            return SessionInfo.from_row(await self._session_row(conn, session_id))

    async def sessions(self, *, status: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT id, meta, length, status, created, updated FROM {self.schema}.sessions "
                "WHERE %(status)s::text IS NULL OR status = %(status)s ORDER BY created, id LIMIT %(limit)s",
                {"status": status, "limit": limit},
            )
            return [SessionInfo.from_row(row) for row in await cur.fetchall()]

    async def start(self) -> None:
        """Connect (and create the schema) now rather than at the first call."""
        async with self._connection():
            pass

    @classmethod
    @asynccontextmanager
    async def for_workers(cls, options: dict[str, Any], folder: Path) -> AsyncIterator[WorkerStore]:
        """A PostgreSQL cluster of the run's own (a store_restart stops no one else's), removed at exit."""
        server = LocalPostgres(tempfile.mkdtemp(prefix="harnesslab-faults-pg-"))
        try:
            yield WorkerStore({**options, "dsn": await asyncio.to_thread(server.start)}, server)
        finally:
            server.remove()

    async def close(self) -> None:
        await self._drain()
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await asyncio.gather(*self._closing, return_exceptions=True)

    # -- new events: LISTEN/NOTIFY ----------------------------------------------------------------

    async def wait_for_events(self, session_id: str, after: int, timeout: float | None = None) -> int:
        """Wait until the log of `session_id` holds more than `after` events; return its length.

        On timeout, returns the length as it is then. Another process's appends wake it too.
        """
        await self._listen()
        future = asyncio.get_running_loop().create_future()
        waiter = (after, future)
        self._waiters.setdefault(session_id, []).append(waiter)
        try:
            length = (await self.session(session_id)).length  # after subscribing: no wake-up is lost
            if length > after:
                return length
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                return (await self.session(session_id)).length
        finally:
            self._waiters[session_id].remove(waiter)
            if not self._waiters[session_id]:
                del self._waiters[session_id]

    async def _listen(self) -> None:
        if self._listening is None or self._listening.done():
            import psycopg

            conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            await conn.execute(f"LISTEN {self.channel}")
            self._listening = asyncio.get_running_loop().create_task(self._dispatch(conn))

    async def _dispatch(self, conn: Any) -> None:
        try:
            async for note in conn.notifies():
                session_id, _, length = note.payload.rpartition(":")
                for after, future in self._waiters.get(session_id, []):
                    if int(length) > after and not future.done():
                        future.set_result(int(length))
        finally:
            await conn.close()

    # -- writes -----------------------------------------------------------------------------------

    async def _commit(self, writes: Sequence[Write]) -> list[Any]:
        """Each round (writes on distinct sessions) commits in one statement, in one round trip. A round the database
        refuses for what a write holds is split apart there: the rounds before it have committed."""
        outcomes: list[Any] = [None] * len(writes)
        for round_ in _rounds(writes):
            batch = [writes[i] for i in round_]
            for i, outcome in zip(round_, await commit_apart(self._commit_round, batch)):
                outcomes[i] = outcome
        return outcomes

    async def _commit_round(self, writes: Sequence[Write]) -> list[Any]:
        written = [write for write in writes if write.rows]  # an empty write only checks its session
        # as two JSON documents: psycopg adapts one string far faster than a dozen arrays
        sessions = json.dumps([
            (w.session_id, w.expect, len(w.rows), status_after((row[0] for row in w.rows), "active" if w.meta is not None else None),
             w.rows[0][2], w.rows[-1][2], w.meta) for w in written])
        events = json.dumps([(w.session_id, i, *row) for w in written for i, row in enumerate(w.rows)])
        async with self._connection() as conn:
            cur = await conn.execute(self._commit_statement, (sessions, events, self.channel))
            done = dict(await cur.fetchall())
            failed = [write.session_id for write in writes if write.session_id not in done]
            if failed:
                cur = await conn.execute(f"SELECT id, length FROM {self.schema}.sessions WHERE id = ANY(%s)", (failed,))
                stored = dict(await cur.fetchall())
        return [done[write.session_id] if write.session_id in done else _not_written(write, stored) for write in writes]

    # -- connections ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; a lost server (down, restarting, a connection cut) is StoreUnavailable."""
        import psycopg
        from psycopg_pool import PoolTimeout

        async with self._pool_lock:
            if self._pool is None:
                self._pool = await self._open_pool()
            pool = self._pool
        try:
            conn = await self._checkout(pool)
            try:
                yield conn
            finally:
                await pool.putconn(conn)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            # a new pool next time: this one's reconnect backoff grows to seconds over an outage
            async with self._pool_lock:
                if self._pool is pool:
                    self._pool = None
                    self._closing.add(asyncio.get_running_loop().create_task(pool.close(timeout=1)))
            raise StoreUnavailable(f"PostgreSQL at {redact_dsn(self.dsn)} is unavailable: {exc}") from None

    async def _checkout(self, pool: Any) -> Any:
        """A connection; waiting for a busy pool up to connect_timeout_s, for one with no connections
        (it lost its server and retries with a growing backoff) about a second."""
        from psycopg_pool import PoolTimeout

        deadline = asyncio.get_running_loop().time() + self.connect_timeout_s
        while True:
            try:
                return await pool.getconn(timeout=min(1.0, self.connect_timeout_s))
            except PoolTimeout:
                if not pool.get_stats().get("pool_size") or asyncio.get_running_loop().time() >= deadline:
                    raise

    async def _open_pool(self) -> Any:
        import psycopg
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        try:  # one direct attempt first: a pool would retry a down server with a backoff that grows to seconds
            probe = await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout_s)))
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact_dsn(self.dsn)}: {exc}") from None
        await probe.close()
        # check: a connection handed out is tested first, so one left broken by a server restart is replaced
        pool = AsyncConnectionPool(self.dsn, min_size=1, max_size=self.pool_size, open=False, kwargs={"autocommit": True},
                                   check=_check_idle)
        try:
            await pool.open(wait=True, timeout=self.connect_timeout_s)
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
                for statement in _schema(self.schema):
                    await conn.execute(statement)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            await pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact_dsn(self.dsn)}: {exc}") from None
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _session_row(self, conn: Any, session_id: str) -> tuple:
        cur = await conn.execute(
            f"SELECT id, meta, length, status, created, updated FROM {self.schema}.sessions WHERE id = %s", (session_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return row


async def _check_idle(conn: Any) -> None:
    """Raise for a pooled connection the server has closed. An idle connection has nothing to read unless the
    server closed it (a restart, a kill): only then is the round trip of a real check spent."""
    from psycopg_pool import AsyncConnectionPool

    if conn.closed or select.select([conn.pgconn.socket], [], [], 0)[0]:
        await AsyncConnectionPool.check_connection(conn)


def _rounds(writes: Sequence[Write]) -> list[list[int]]:
    """Indices of `writes` in rounds of distinct sessions, each session's writes in order (a statement updates a
    row once): a session's k-th write of the batch goes in round k."""
    rounds: list[list[int]] = []
    seen: Counter[str] = Counter()
    for i, write in enumerate(writes):
        k = seen[write.session_id]
        seen[write.session_id] += 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(i)
    return rounds


def _not_written(write: Write, stored: dict[str, int]) -> int | StoreError:
    """The outcome of a write the statement did not apply, from its session's length as stored now: an empty
    write's is that length; any other was refused."""
    if write.meta is not None:
        return SessionExists(write.session_id)
    if write.session_id not in stored:
        return SessionNotFound(write.session_id)
    length = stored[write.session_id]
    if write.rows or write.expect not in (None, length):
        return Conflict(write.session_id, write.expect, length)
    return length


def _commit_sql(s: str) -> str:
    """One statement: create the new sessions, lock the others in id order (concurrent rounds cannot deadlock) and
    advance those whose length is as expected, insert the events of every write that passed, notify listeners."""
    return f"""
WITH w AS (
    SELECT r->>0 AS id, (r->>1)::bigint AS expect, (r->>2)::bigint AS n, r->>3 AS status, (r->>4)::float8 AS created,
           (r->>5)::float8 AS updated, r->>6 AS meta
    FROM json_array_elements(%s::json) AS r),
locked AS MATERIALIZED (
    SELECT id FROM {s}.sessions WHERE id IN (SELECT id FROM w WHERE meta IS NULL) ORDER BY id FOR UPDATE),
created AS (
    INSERT INTO {s}.sessions (id, meta, length, status, created, updated)
    SELECT id, meta, n, status, created, updated FROM w WHERE meta IS NOT NULL
    ON CONFLICT (id) DO NOTHING RETURNING id, length),
advanced AS (
    UPDATE {s}.sessions AS s SET length = s.length + w.n, status = COALESCE(w.status, s.status), updated = w.updated
    FROM w JOIN locked USING (id) WHERE s.id = w.id AND (w.expect IS NULL OR s.length = w.expect)
    RETURNING s.id, s.length),
done AS (SELECT * FROM created UNION ALL SELECT * FROM advanced),
inserted AS (
    INSERT INTO {s}.events (session_id, position, type, data, ts, v)
    SELECT r->>0, done.length - w.n + (r->>1)::bigint, r->>2, r->>3, (r->>4)::float8, (r->>5)::int
    FROM json_array_elements(%s::json) AS r JOIN done ON done.id = r->>0 JOIN w ON w.id = r->>0)
SELECT done.id, done.length FROM done, LATERAL (SELECT pg_notify(%s, done.id || ':' || done.length)) AS notified"""


def _schema(s: str) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.sessions (
            id text PRIMARY KEY, meta text NOT NULL, length bigint NOT NULL, status text NOT NULL,
            created double precision NOT NULL, updated double precision NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.events (
            session_id text NOT NULL, position bigint NOT NULL, type text NOT NULL, data text NOT NULL,
            ts double precision NOT NULL, v integer NOT NULL, PRIMARY KEY (session_id, position))""",
        f"CREATE INDEX IF NOT EXISTS sessions_status ON {s}.sessions (status, created)",
    ]



def redact_dsn(text: str | None) -> str:
    """`text` with the password of every DSN in it replaced by ***."""
    return re.sub(r"(://[^:/@\s\"']+):[^@\s\"']*@", r"\1:***@", text or "")
