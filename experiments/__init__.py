"""harnesslab's experiments: the command (cli/), a run (run/), its results (results/) and report (report/), runs
under faults (faults/) with worker processes (workers/), replay and fork (replay/), logged sessions (sessions/),
benchmarks (bench/) and the task suites (tasks/)."""
