"""The hands suite: work that parallelises across hands (`harness.hands=[a,b,...]`).

`shards`: a list of shards, each run by `bash shard.sh K`, which takes about a second (it waits, as a
test shard waits on a service) and prints a line derived from the seed. The policy asks for every shard at
once — one tool call per shard, spread over the hands its tools offer — then writes the lines, in shard
order, to results.txt on the first hand, where the check reads them. With one hand the calls run one
after another; with N they run N at a time.
"""
from __future__ import annotations

import hashlib
import random

from experiments.tasks.base import Task, file_equals
from harnesses.models.offline_brain import Call, Conversation, Reply

SHARD_SECONDS = 1.0
SHARD_SCRIPT = f"""#!/bin/bash
set -e
sleep {SHARD_SECONDS:g}
printf 'shard %s %s\\n' "$1" "$(printf '%s-%s' "$1" "$(cat seed.txt)" | sha256sum | cut -c1-12)"
"""


def shards(rng: random.Random, count: int = 8) -> Task:
    seed = f"{rng.randrange(16**8):08x}"
    ids = sorted(rng.sample(range(100, 1000), count))
    lines = [f"shard {k} {hashlib.sha256(f'{k}-{seed}'.encode()).hexdigest()[:12]}" for k in ids]

    def policy(c: Conversation):
        listing = c.output("read_file", path="shards.txt")
        if listing is None:
            return Call("read_file", {"path": "shards.txt"})
        wanted = listing.split()
        outputs = {k: c.output("bash", command=f"bash shard.sh {k}") for k in wanted}
        missing = [k for k in wanted if outputs[k] is None]
        if missing:  # every missing shard at once, spread over the hands
            return [Call("bash", {"command": f"bash shard.sh {k}", **_on(c.hands, i)}) for i, k in enumerate(missing)]
        if not c.succeeded("write_file", path="results.txt"):
            return Call("write_file", {"path": "results.txt", "content": "".join(outputs[k] for k in wanted)})
        return Reply(f"Ran {len(wanted)} shards; their lines are in results.txt.")

    return Task(
        "shards",
        "Run `bash shard.sh K` for every shard K listed in shards.txt (each takes about a second), then write "
        "their output lines, in the order of shards.txt, to results.txt.",
        policy,
        file_equals("results.txt", "".join(f"{line}\n" for line in lines)),
        {"shard.sh": SHARD_SCRIPT, "seed.txt": seed, "shards.txt": "\n".join(map(str, ids)) + "\n"},
    )


def _on(hands: tuple[str, ...], i: int) -> dict[str, str]:
    """Round-robin over the hands, if there are several to choose from."""
    return {"hand": hands[i % len(hands)]} if len(hands) > 1 else {}


TASKS = [shards]
