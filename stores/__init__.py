"""The session: durable, append-only event logs (memory, SQLite, DuckDB, PostgreSQL), with group commit.
Their contract is stores/base.py (SessionStore)."""
