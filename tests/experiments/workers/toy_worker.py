"""A worker for supervisor tests: `python -m tests.experiments.workers.toy_worker SLOT BEHAVIOUR`.

It writes its pid, its parent's and whether it has `decimal` (which it does not import) to its stderr, says it is ready as a worker does, then
`exits` (0), `crashes` (1: it is restarted), `cannot-go-on` (the supervisor's CANNOT_GO_ON) or `sleeps` until killed."""
import os
import sys
import time

from experiments.workers.supervisor import CANNOT_GO_ON

if __name__ == "__main__":
    slot, behaviour = sys.argv[1:3]
    print(f"pid {os.getpid()} parent {os.getppid()} decimal {int('decimal' in sys.modules)}", file=sys.stderr, flush=True)
    print(f"worker {slot} ready {time.time():.3f}", flush=True)
    if behaviour == "sleeps":
        time.sleep(600)
    sys.exit({"cannot-go-on": CANNOT_GO_ON, "crashes": 1}.get(behaviour, 0))
