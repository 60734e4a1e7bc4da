"""Task suites and the policy book the offline models answer from."""
from __future__ import annotations

import dataclasses
import random
from typing import Any, Callable, Mapping, Sequence

from experiments.tasks.base import Task
from harnesses.models.offline_brain import Conversation, Policy

Builder = Callable[[random.Random], Task]


def suites() -> dict[str, list[Builder]]:
    from experiments.tasks import credentials, hands, long_horizon, security, smoke

    return {"smoke": smoke.TASKS, "long_horizon": long_horizon.TASKS, "credentials": credentials.TASKS,
            "security": security.TASKS, "security_abuse": security.ABUSE_TASKS, "hands": hands.TASKS}


def load_suite(
    name: str = "smoke",
    only: Sequence[str] | None = None,
    repeat: int = 1,
    seed: int = 0,
    repo_files: int = 0,
    repo_file_bytes: int = 2000,
    setup_command: str | None = None,
    question_share: float = 0.0,
) -> list[tuple[str, int, Task]]:
    """(suite, instance, task) for every task of suite `name`, `repeat` times with seeds seed, seed+1, ...

    Workload realism: every task's environment also gets a repository of `repo_files` files of about
    `repo_file_bytes` bytes, written by a setup command in the sandbox, and `setup_command` after it;
    a seeded `question_share` of the sessions are replaced by a question that needs no tool.
    """
    if not 0 <= question_share <= 1:
        raise ValueError(f"tasks.question_share must be between 0 and 1, got {question_share}")
    chosen = _select(name, only, repeat, seed)
    rng = random.Random(f"{seed}:questions")
    question = next(b for b in suites()["smoke"] if b.__name__ == "arithmetic")
    chosen = [(s, i, question(random.Random(0)) if rng.random() < question_share else t) for s, i, t in chosen]
    extra = tuple(c for c in (_repository_command(repo_files, repo_file_bytes), setup_command) if c)
    return [(s, i, dataclasses.replace(t, commands=t.commands + extra)) for s, i, t in chosen]


def _repository_command(files: int, size: int) -> str | None:
    """A setup command writing `files` Python modules of about `size` bytes under repo/."""
    if files <= 0:
        return None
    line = "value = 64 * 1024  # padding, so that the module has a size\n"  # no quotes: it sits in bash "..."
    body = f"'# module %d\\n' % i + {line!r} * {max(1, size // len(line))}"
    return (f"python3 -c \"import os; os.makedirs('repo', exist_ok=True); "
            f"[open('repo/module_%04d.py' % i, 'w').write({body}) for i in range({files})]\"")


def _select(name: str, only: Sequence[str] | None, repeat: int, seed: int) -> list[tuple[str, int, Task]]:
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
