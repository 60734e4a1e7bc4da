"""Task suites and the policy book the offline models answer from."""
from __future__ import annotations

import random
from typing import Any, Callable, Mapping, Sequence

from experiments.tasks.base import Task
from harnesses.policy import Conversation, Policy

Builder = Callable[[random.Random], Task]


def suites() -> dict[str, list[Builder]]:
    from experiments.tasks import smoke

    return {"smoke": smoke.TASKS}


def load_suite(name: str = "smoke", only: Sequence[str] | None = None, repeat: int = 1, seed: int = 0) -> list[tuple[str, int, Task]]:
    """(suite, instance, task) for every task of suite `name`, `repeat` times with seeds seed, seed+1, ..."""
    known = suites()
    if name not in known:
        raise ValueError(f"unknown task suite {name!r}; valid: {', '.join(sorted(known))}")
    if repeat < 1:
        raise ValueError(f"tasks.repeat must be at least 1, got {repeat}")
    builders = known[name]
    names = [b(random.Random(0)).name for b in builders]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)} in suite {name!r}; valid: {', '.join(names)}")
    return [
        (name, instance, task)
        for instance in range(repeat)
        for builder in builders
        if (task := builder(random.Random(f"{seed + instance}:{builder.__name__}"))).name in (only or names)
    ]


def policy_book() -> Callable[[Sequence[Mapping[str, Any]]], Policy | None]:
    """Finds a task's solver policy from the first user message of a request."""
    policies = {task.prompt: task.policy for builders in suites().values() for b in builders for task in [b(random.Random(0))]}

    def book(messages: Sequence[Mapping[str, Any]]) -> Policy | None:
        return policies.get(Conversation(messages).prompt)

    return book
