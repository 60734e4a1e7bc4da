"""`python -m experiments.cli ARGS`: the `harnesslab` command, as the supervisor starts its workers."""
import sys

from experiments.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
