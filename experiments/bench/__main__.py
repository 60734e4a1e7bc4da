"""`make bench`: harness overhead per turn, then sandboxes, the emulator, the stores and scale.

Benchmarks compare alternatives side by side in one run and report medians, p95 and ratios;
they assert nothing (tests do that). Run: `make bench` or `python -m experiments.bench [--quick]`.
"""
from __future__ import annotations

import argparse
import asyncio

from experiments.bench import emulator, harness, sandboxes, scale, stores, validation


async def main(quick: bool, only: str | None) -> None:
    if only in (None, "harness"):
        await harness.main(quick)
    if only in (None, "sandboxes"):
        await sandboxes.main(quick)
    if only in (None, "emulator"):
        validation.main(quick)
        await validation.sdk_measured(quick)
        await emulator.main(quick)
    if only in (None, "stores"):
        await stores.main(quick)
    if only in (None, "scale"):
        await asyncio.to_thread(scale.main, quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke check")
    parser.add_argument("--only", choices=["harness", "sandboxes", "emulator", "stores", "scale"], help="run one group of benchmarks")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.only))
