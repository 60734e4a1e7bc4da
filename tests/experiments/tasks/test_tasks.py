"""Task suites load as configured, and every check can fail: it fails on the untouched workspace."""
from __future__ import annotations

import pytest

from experiments.tasks import load_suite
from experiments.tasks.base import CheckContext
from sandboxes.base import Setup
from sandboxes.local import LocalSandboxProvider

SMOKE = load_suite("smoke")
LONG = load_suite("long_horizon")


def test_smoke_has_at_least_eight_distinct_tasks():
    names = [task.name for _, _, task in SMOKE]
    assert len(names) >= 8 and len(set(names)) == len(names)
    assert len({task.prompt for _, _, task in SMOKE}) == len(names)


@pytest.mark.parametrize("task", [t for _, _, t in SMOKE + LONG], ids=lambda t: t.name)
async def test_check_fails_before_the_task_is_done(task, tmp_path):
    provider = LocalSandboxProvider(root=str(tmp_path))
    sandbox = await provider.provision()
    await sandbox.prepare(Setup.from_meta(task.meta("smoke")["setup"]))

    async def get():
        return sandbox

    verdict = await task.check(CheckContext("", get))
    assert not verdict.success and verdict.detail
    await provider.close()


def test_suite_options_are_validated():
    with pytest.raises(ValueError, match="unknown task suite 'nope'; valid: credentials, hands, long_horizon, security, security_abuse, smoke"):
        load_suite("nope")
    with pytest.raises(ValueError, match="unknown task.* bogus in suite 'smoke'; valid: greeting"):
        load_suite("smoke", only=["bogus"])
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        load_suite("smoke", repeat=0)


def test_repeat_and_only_select_instances():
    chosen = load_suite("smoke", only=["greeting", "fix_bug"], repeat=3)
    assert sorted((t.name, i) for _, i, t in chosen) == sorted((n, i) for n in ("greeting", "fix_bug") for i in range(3))


def test_after_a_lost_sandbox_a_policy_keeps_what_it_saw_before_changing_anything():
    from harnesses.models.offline_brain import SANDBOX_LOST, Conversation

    def use(id_, name, input):
        return {"role": "assistant", "content": [{"type": "tool_use", "id": id_, "name": name, "input": input}]}

    def result(id_, text, is_error=False):
        return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id_, "content": text, "is_error": is_error}]}

    messages = [
        {"role": "user", "content": "task"},
        use("a", "read_file", {"path": "x"}), result("a", "pristine x"),
        use("b", "write_file", {"path": "y", "content": "1"}), result("b", "wrote y"),
        use("c", "read_file", {"path": "y"}), result("c", "1"),  # after a change: gone with the sandbox
        use("d", "bash", {"command": "ls"}), result("d", f"the {SANDBOX_LOST} (gone)", is_error=True),
        use("e", "list_files", {"path": "."}), result("e", "x"),
    ]
    seen = Conversation(messages)
    assert [e.id for e in seen.exchanges] == ["a", "e"]
    assert seen.output("read_file", path="x") == "pristine x" and not seen.succeeded("write_file", path="y")


def test_what_each_lost_sandbox_showed_before_it_was_changed_is_kept():
    from harnesses.models.offline_brain import SANDBOX_LOST, Conversation

    def exchange(id_, name, text, is_error=False):
        return [{"role": "assistant", "content": [{"type": "tool_use", "id": id_, "name": name, "input": {"path": id_}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id_, "content": text, "is_error": is_error}]}]

    lost = f"the {SANDBOX_LOST}"
    messages = [{"role": "user", "content": "task"}, *exchange("a", "read_file", "A"), *exchange("x", "bash", lost, True),
                *exchange("b", "read_file", "B"), *exchange("w", "write_file", "ok"), *exchange("c", "read_file", "C"),
                *exchange("y", "bash", lost, True), *exchange("d", "read_file", "D")]
    assert [e.id for e in Conversation(messages).exchanges] == ["a", "b", "d"]
