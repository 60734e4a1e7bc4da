"""Tasks that need credentials, run with `credentials=proxy`: the proxy holds the secrets, the session a capability.

Every check also looks for the planted secrets' prefix (`hlab-`) everywhere in the workspace, the cloned
repository's .git included: a task only passes if no credential reached the sandbox.
"""
from __future__ import annotations

import json
import random

from experiments.tasks.base import Task, all_of, command_passes, file_equals
from harnesses.models.offline_brain import Call, Conversation, Reply

NO_SECRET_IN_WORKSPACE = command_passes("! grep -rl hlab- . && ! env | grep -q hlab-")
API = {"tools": ["http_request"], "targets": ["api"]}
GIT = {"tools": ["git_clone"], "targets": ["git"]}


def api_user(rng: random.Random) -> Task:
    def policy(c: Conversation):
        answer = c.output("http_request", url="http://api.lab/v1/whoami")
        if answer is None:
            return Call("http_request", {"url": "http://api.lab/v1/whoami"})
        user = json.loads(answer.partition("\n")[2])["user"]
        if not c.succeeded("write_file", path="user.txt"):
            return Call("write_file", {"path": "user.txt", "content": user + "\n"})
        return Reply(f"The API says the user is {user}.")

    return Task(
        "api_user",
        "Ask the API which user we are (GET http://api.lab/v1/whoami with http_request) and write the user name to user.txt.",
        policy, all_of(file_equals("user.txt", "harnesslab\n"), NO_SECRET_IN_WORKSPACE), credentials=API,
    )


def cloned_version(rng: random.Random) -> Task:
    def policy(c: Conversation):
        version = c.output("read_file", path="demo/VERSION")
        if version is None:
            return Call("read_file", {"path": "demo/VERSION"})
        if not c.succeeded("write_file", path="version.txt"):
            return Call("write_file", {"path": "version.txt", "content": version})
        return Reply(f"The demo repository is at version {version.strip()}.")

    return Task(
        "cloned_version",
        "The demo repository is cloned into demo/. Write the version it declares in demo/VERSION to version.txt.",
        policy, all_of(file_equals("version.txt", "1.4.2\n"), command_passes("git -C demo log --oneline | grep -q initial"),
                       NO_SECRET_IN_WORKSPACE),
        repos=({"url": "http://git.lab/demo.git", "dest": "demo"},), credentials=GIT,
    )


TASKS = [api_user, cloned_version]
