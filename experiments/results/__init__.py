"""results.duckdb: every table's schema (schema.py), the rows derived from the session logs (tables.py), a run
saved and printed (save.py, summary.py), and the checks of the logs (invariants.py, leaks.py)."""
