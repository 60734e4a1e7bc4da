"""The smoke suite: small tasks that exercise every tool, tool errors, and a question needing no tool.

Each builder takes a seeded `random.Random` for its data; prompts do not depend on the seed, and no
policy reads the seed: policies learn everything from the conversation.
"""
from __future__ import annotations

import json
import random
import re

from experiments.tasks.base import Task, all_of, command_passes, file_equals, json_equals, reply_contains
from harnesses.models.offline_brain import Call, Conversation, Reply


def greeting(rng: random.Random) -> Task:
    def policy(c: Conversation):
        if not c.succeeded("write_file", path="hello.txt"):
            return Call("write_file", {"path": "hello.txt", "content": "hello, harnesslab\n"})
        return Reply("Created hello.txt.")

    return Task(
        "greeting",
        "Create a file named hello.txt containing exactly one line: hello, harnesslab",
        policy,
        file_equals("hello.txt", "hello, harnesslab\n"),
    )


def fix_bug(rng: random.Random) -> Task:
    a, b = rng.randint(2, 50), rng.randint(2, 50)
    files = {
        "calc.py": "def add(a, b):\n    return a - b\n\n\ndef double(x):\n    return 2 * x\n",
        "test_calc.py": f"from calc import add, double\n\nassert add({a}, {b}) == {a + b}, add({a}, {b})\n"
                        "assert double(4) == 8\nprint('all tests passed')\n",
    }

    def policy(c: Conversation):
        source = c.output("read_file", path="calc.py")
        edit_failed = c.last is not None and c.last.name == "edit_file" and c.last.is_error
        if source is None or edit_failed:  # after an edit that failed, or whose outcome is unknown: look again
            return Call("read_file", {"path": "calc.py"})
        if "return a - b" in source and not c.succeeded("edit_file", path="calc.py"):
            return Call("edit_file", {"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"})
        if not c.succeeded("bash", command="python3 test_calc.py"):
            if c.last and c.last.name == "bash" and c.last.is_error:
                return Reply(f"The tests still fail:\n{c.last.output}")
            return Call("bash", {"command": "python3 test_calc.py"})
        return Reply("Fixed add() in calc.py; the tests pass.")

    return Task(
        "fix_bug",
        "The tests in test_calc.py fail. Fix the bug in calc.py so that `python3 test_calc.py` passes.",
        policy,
        command_passes("python3 test_calc.py"),
        files,
    )


def find_needle(rng: random.Random) -> Task:
    code = f"{rng.randrange(16**8):08x}"
    where = rng.randrange(30)
    files = {
        f"docs/note_{i:02d}.txt": f"Meeting notes #{i}.\n" + "Nothing of interest here.\n" * rng.randint(3, 12)
        for i in range(30)
    }
    files[f"docs/note_{where:02d}.txt"] += f"By the way, the access code is {code}.\n"
    pattern = re.compile(r"the access code is ([0-9a-f]+)")

    def policy(c: Conversation):
        listing = c.output("list_files", path="docs")
        if listing is None:
            return Call("list_files", {"path": "docs"})
        for path in listing.splitlines():
            text = c.output("read_file", path=path)
            if text is None and c.checked("read_file", path=path):
                continue  # read before: the context no longer shows it, but it had no code (else the search had stopped)
            if text is None:
                return Call("read_file", {"path": path})
            if found := pattern.search(text):
                if not c.succeeded("write_file", path="answer.txt"):
                    return Call("write_file", {"path": "answer.txt", "content": found.group(1)})
                return Reply(f"The access code is {found.group(1)}; written to answer.txt.")
        return Reply("No file mentions an access code.")

    return Task(
        "find_needle",
        "One of the 30 files in docs/ mentions an access code. Find it and write just the code to answer.txt.",
        policy,
        file_equals("answer.txt", code),
        files,
    )


def arithmetic(rng: random.Random) -> Task:
    def policy(c: Conversation):
        x, y = map(int, re.findall(r"\d+", c.prompt)[:2])
        return Reply(str(x * y))

    return Task(
        "arithmetic",
        "What is 17 multiplied by 23? Answer with the number only.",
        policy,
        reply_contains("391"),
    )


def count_rows(rng: random.Random) -> Task:
    rows = rng.randint(40, 400)
    data = "id,value\n" + "".join(f"{i},{rng.random():.6f}\n" for i in range(rows))
    command = "tail -n +2 data.csv | wc -l"

    def policy(c: Conversation):
        counted = c.output("bash", command=command)
        if counted is None:
            return Call("bash", {"command": command})
        return Reply(counted.strip())

    return Task(
        "count_rows",
        "How many data rows (not counting the header) does data.csv have? Reply with the number only.",
        policy,
        reply_contains(str(rows)),
        {"data.csv": data},
    )


def rename_function(rng: random.Random) -> Task:
    files = {
        "util.py": "def fetch_data(n):\n    return list(range(n))\n",
        "helpers.py": "from util import fetch_data\n\n\ndef total(n):\n    return sum(fetch_data(n))\n",
        "main.py": "from util import fetch_data\nfrom helpers import total\n\n"
                   "assert fetch_data(3) == [0, 1, 2]\nassert total(4) == 6\nprint('OK')\n",
    }
    grep = "grep -rl fetch_data --include='*.py' . | sort"

    def policy(c: Conversation):
        found = c.output("bash", command=grep)
        if found is None:
            return Call("bash", {"command": grep})
        for path in (p.removeprefix("./") for p in found.split()):
            if c.succeeded("write_file", path=path):
                continue
            source = c.output("read_file", path=path)
            if source is None:
                return Call("read_file", {"path": path})
            return Call("write_file", {"path": path, "content": source.replace("fetch_data", "load_records")})
        run = c.results("bash", command="python3 main.py")
        if not run:
            return Call("bash", {"command": "python3 main.py"})
        return Reply(f"Renamed fetch_data to load_records; main.py prints: {run[-1].output.strip()}")

    return Task(
        "rename_function",
        "Rename the function fetch_data to load_records everywhere in the project; `python3 main.py` must still print OK.",
        policy,
        all_of(
            command_passes("! grep -rq fetch_data --include='*.py' ."),
            command_passes("grep -q 'def load_records' util.py && python3 main.py | grep -qx OK"),
        ),
        files,
    )


def edit_json(rng: random.Random) -> Task:
    config = {"name": f"service-{rng.randint(1, 99)}", "debug": False, "port": 8080, "tags": ["a", "b"]}
    expected = {**config, "debug": True, "port": 9090}

    def policy(c: Conversation):
        text = c.output("read_file", path="config.json")
        if text is None:
            return Call("read_file", {"path": "config.json"})
        if not c.succeeded("write_file", path="config.json"):
            settings = {**json.loads(text), "debug": True, "port": 9090}
            return Call("write_file", {"path": "config.json", "content": json.dumps(settings, indent=2) + "\n"})
        return Reply("config.json now has debug=true and port=9090.")

    return Task(
        "edit_json",
        "In config.json, set debug to true and port to 9090, keeping every other setting as it is.",
        policy,
        json_equals("config.json", expected),
        {"config.json": json.dumps(config, indent=2) + "\n"},
    )


def sort_unique(rng: random.Random) -> Task:
    pool = ["Ada", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ken", "Linus"]
    names = [rng.choice(pool) for _ in range(40)]
    command = "sort -u names.txt > sorted.txt"

    def policy(c: Conversation):
        if not c.succeeded("bash", command=command):
            return Call("bash", {"command": command})
        return Reply("Wrote the distinct names, sorted, to sorted.txt.")

    return Task(
        "sort_unique",
        "Write the distinct lines of names.txt, sorted alphabetically, to sorted.txt.",
        policy,
        file_equals("sorted.txt", "".join(f"{n}\n" for n in sorted(set(names)))),
        {"names.txt": "".join(f"{n}\n" for n in names)},
    )


def recover_missing_file(rng: random.Random) -> Task:
    """The file is not where the prompt says: the policy must read the error and search."""
    port = rng.randint(1024, 65535)

    def policy(c: Conversation):
        for path in ["settings.ini"] + [p for p in (c.output("list_files") or "").splitlines() if p.endswith("settings.ini")]:
            text = c.output("read_file", path=path)
            if text is not None:
                return Reply(re.search(r"port\s*=\s*(\d+)", text).group(1))
            if not c.results("read_file", path=path):
                return Call("read_file", {"path": path})
        if not c.succeeded("list_files"):
            return Call("list_files", {})
        return Reply("settings.ini is nowhere in the workspace.")

    return Task(
        "recover_missing_file",
        "Read settings.ini and reply with the value of its port setting, the number only.",
        policy,
        reply_contains(str(port)),
        {"conf/settings.ini": f"[server]\nhost = 127.0.0.1\nport = {port}\n", "README": "Settings live in conf/.\n"},
    )


def fix_tool_input(rng: random.Random) -> Task:
    """The first call leaves out a required field; the validation error must reach the policy."""
    content = "# TODO\n\n- write the tests\n"

    def policy(c: Conversation):
        if not c.exchanges:
            return Call("write_file", {"path": "notes/todo.md"})
        if not c.succeeded("write_file", path="notes/todo.md"):
            if "content" not in (c.last.output or ""):
                return Reply(f"Unexpected error: {c.last.output}")
            return Call("write_file", {"path": "notes/todo.md", "content": content})
        return Reply("Created notes/todo.md.")

    return Task(
        "fix_tool_input",
        "Create notes/todo.md with a '# TODO' heading and one item: write the tests.",
        policy,
        file_equals("notes/todo.md", content),
    )


TASKS = [greeting, fix_bug, find_needle, arithmetic, count_rows, rename_function, edit_json, sort_unique,
         recover_missing_file, fix_tool_input]
