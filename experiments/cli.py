"""`harnesslab` command line: `harnesslab run [-m] [hydra overrides]`."""
from __future__ import annotations

import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

USAGE = """usage: harnesslab COMMAND [ARGS]

commands:
  run [-m] [OVERRIDE ...]   run an experiment (Hydra overrides, e.g. store=memory; -m sweeps)
                            `harnesslab run --help` lists the config groups and their options

examples:
  harnesslab run
  harnesslab run store=memory tasks.only=[greeting,fix_bug] run.concurrency=2
  harnesslab run -m store=memory,sqlite
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        return run(rest)
    print(f"harnesslab: unknown command {command!r}; valid commands: run\n\n{USAGE}", file=sys.stderr)
    return 2


def run(args: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from experiments.job import run_job

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def job(cfg: DictConfig) -> None:
        runtime = HydraConfig.get().runtime
        run_job(cfg, Path(runtime.output_dir), dict(runtime.choices))

    sys.argv = ["harnesslab run", *args]
    job()
    return 0


if __name__ == "__main__":
    sys.exit(main())
