"""The `harnesslab` command: main.py parses the arguments and runs the Hydra job of `run`; handlers.py does each
other subcommand. `python -m experiments.cli` is the same command (the supervisor starts workers with it)."""
