"""Worker processes that drive sessions from a shared store: the worker (worker.py), the supervisor that starts and
restarts them (supervisor.py) from a fork server (fork_server.py), and `harnesslab collect` (collect.py)."""
