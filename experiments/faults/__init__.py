"""Runs under faults (`faults=`, `run.workers`): the fault kinds (kinds.py) and the points inside a worker they
hit (failpoints.py), what they act on (lab.py), the run driven by worker processes (runner.py), acknowledged
events (acks.py), and what the run found: one row per fault, its recovery time, the totals (findings.py)."""
