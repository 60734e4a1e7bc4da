"""Long tasks whose early facts are needed late: many steps, so context strategies make a difference.

Each comes short and long. The policies are bounded by their context exactly as in the smoke suite:
a fact the context no longer shows must be fetched again (or recalled, or read from notes), and a
strategy that keeps dropping it runs the session out of turns.
"""
from __future__ import annotations

import random
import re

from experiments.tasks.base import Task, all_of, command_passes, file_equals
from harnesses.models.offline_brain import Call, Conversation, Reply

FILLER = ("request served in {ms} ms", "cache warm, {ms} entries", "retrying upstream after {ms} ms", "heartbeat ok ({ms})")


def needles(files: int, keys: int):
    """`keys` codes hidden in `files` log files, to be written out together at the end."""
    prompt = (f"The {files} files in logs/ hide {keys} keys, as lines `KEY-<i> = <code>` for i = 1..{keys}. "
              f"Write the {keys} codes, in order of i and one per line, to keys.txt.")
    pattern = re.compile(r"KEY-(\d+) = ([0-9a-f]{8})")

    def build(rng: random.Random) -> Task:
        codes = [f"{rng.randrange(16**8):08x}" for _ in range(keys)]
        where = rng.sample(range(files), keys)
        logs = {}
        for i in range(files):
            lines = [rng.choice(FILLER).format(ms=rng.randint(1, 999)) for _ in range(rng.randint(8, 20))]
            if i in where:
                lines.insert(rng.randrange(len(lines)), f"KEY-{where.index(i) + 1} = {codes[where.index(i)]}")
            logs[f"logs/part_{i:03d}.txt"] = "\n".join(lines) + "\n"
        return Task(f"needles_{files}", prompt, policy, file_equals("keys.txt", "\n".join(codes) + "\n"), logs)

    def policy(c: Conversation):
        listing = c.output("list_files", path="logs")
        if listing is None:
            return Call("list_files", {"path": "logs"})
        found = {int(i): code for e in c.results("read_file") for i, code in pattern.findall(e.output or "")}
        if len(found) == keys:
            content = "".join(f"{found[i]}\n" for i in range(1, keys + 1))
            if not c.succeeded("write_file", path="keys.txt", content=content):
                return Call("write_file", {"path": "keys.txt", "content": content})
            return Reply(f"Wrote the {keys} keys to keys.txt.")
        paths = listing.splitlines()
        unread = [p for p in paths if not c.checked("read_file", path=p)]
        unseen = [p for p in paths if c.output("read_file", path=p) is None]  # read once, but out of view now
        return Call("read_file", {"path": (unread or unseen)[0]})

    return build


def refactor(modules: int):
    """Rename a function used across `modules` modules; the tests must still pass."""
    prompt = (f"The package app/ has {modules} modules that call compute_total; rename it to sum_amounts everywhere. "
              "`python3 run_tests.py` must print OK.")
    grep = "grep -rl compute_total --include='*.py' . | sort"

    def build(rng: random.Random) -> Task:
        files = {"app/__init__.py": "", "app/core.py": "def compute_total(values):\n    return sum(values)\n"}
        calls = []
        for i in range(modules):
            k = rng.randint(2, 9)
            files[f"app/mod_{i:02d}.py"] = (f"from app.core import compute_total\n\n\ndef run_{i}():\n"
                                            f"    return compute_total(range({k}))\n")
            calls.append(f"assert run_{i}() == {k * (k - 1) // 2}")
        imports = "".join(f"from app.mod_{i:02d} import run_{i}\n" for i in range(modules))
        files["run_tests.py"] = f"{imports}from app.core import sum_amounts\n\n" + "\n".join(calls) + "\nprint('OK')\n"
        check = all_of(command_passes("! grep -rq compute_total --include='*.py' ."),
                       command_passes("python3 run_tests.py | grep -qx OK"))
        return Task(f"refactor_{modules}", prompt, policy, check, files)

    def policy(c: Conversation):
        found = c.results("bash", command=grep)
        if not found:
            return Call("bash", {"command": grep})
        for path in (p.removeprefix("./") for p in (found[-1].output or "").split()):
            if c.checked("write_file", path=path):
                continue
            source = c.output("read_file", path=path)
            if source is None:
                return Call("read_file", {"path": path})
            return Call("write_file", {"path": path, "content": source.replace("compute_total", "sum_amounts")})
        run = c.results("bash", command="python3 run_tests.py")
        if not run:
            return Call("bash", {"command": "python3 run_tests.py"})
        return Reply(f"Renamed compute_total to sum_amounts; the tests print: {run[-1].output.strip()}")

    return build


TASKS = [needles(20, 3), needles(60, 5), refactor(6), refactor(16)]
