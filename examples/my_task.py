"""A task suite of one's own: a prompt, the workspace it starts from, a check run in the session's sandbox, and a
solver policy the offline models (scripted, emulator) answer with. The emulator finds a task's policy through its
policy book, so point it at this file's, which adds these tasks to the built-in ones:

    PYTHONPATH=. harnesslab run tasks._target_=examples.my_task.load_suite ~tasks.name model.policies=examples.my_task.policy_book
"""
from __future__ import annotations

import random
from typing import Sequence

from experiments import tasks as builtin
from experiments.tasks.base import Task, file_equals
from harnesses.models.offline_brain import Call, Conversation, Reply


def shout(rng: random.Random) -> Task:
    word = rng.choice(["alpha", "bravo", "charlie"])

    def policy(c: Conversation):
        text = c.output("read_file", path="word.txt")
        if text is None:
            return Call("read_file", {"path": "word.txt"})
        if not c.succeeded("write_file", path="loud.txt"):
            return Call("write_file", {"path": "loud.txt", "content": text.upper()})
        return Reply("Wrote loud.txt.")

    return Task("shout", "Write the content of word.txt in capital letters to loud.txt.", policy,
                file_equals("loud.txt", f"{word.upper()}\n"), files={"word.txt": f"{word}\n"})


TASKS = [shout]


def load_suite(only: Sequence[str] | None = None, repeat: int = 1, seed: int = 0, **_workload) -> list[tuple[str, int, Task]]:
    """(suite, instance, task) for each task, `repeat` times, as experiments.tasks.load_suite gives them."""
    names = [builder(random.Random(0)).name for builder in TASKS]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)} in suite 'mine'; valid: {', '.join(names)}")
    return [("mine", instance, task) for instance in range(repeat) for builder in TASKS
            if (task := builder(random.Random(f"{seed + instance}:{builder.__name__}"))).name in (only or names)]


def policy_book():
    """The built-in policy book, and these tasks' policies (found by the task's prompt)."""
    known = builtin.policy_book()
    mine = {task.prompt: task.policy for builder in TASKS for task in [builder(random.Random(0))]}

    def book(messages):
        return mine.get(Conversation(messages).prompt) or known(messages)

    return book
