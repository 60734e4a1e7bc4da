"""The agent toolset on harnesslab's hands: the API's input schemas, each tool run by a local sandbox, and the
emulated brain's dialect translating its own calls both ways without loss."""
from __future__ import annotations

import pytest
from anthropic.types.beta import (
    BetaManagedAgentsAgentToolset20260401BashInput, BetaManagedAgentsAgentToolset20260401EditInput,
    BetaManagedAgentsAgentToolset20260401GlobInput, BetaManagedAgentsAgentToolset20260401GrepInput,
    BetaManagedAgentsAgentToolset20260401ReadInput, BetaManagedAgentsAgentToolset20260401WriteInput,
)

from experiments.tasks import load_suite
from harnesses.models.offline_brain import Conversation, Reply
from managed.dialect import as_agent_call, as_brain_call
from managed.toolset import AGENT_TOOLS, ToolsetProvider, glob_regex
from sandboxes.base import Setup
from sandboxes.local import LocalSandboxProvider

SDK_INPUTS = {"bash": BetaManagedAgentsAgentToolset20260401BashInput, "read": BetaManagedAgentsAgentToolset20260401ReadInput,
              "write": BetaManagedAgentsAgentToolset20260401WriteInput, "edit": BetaManagedAgentsAgentToolset20260401EditInput,
              "glob": BetaManagedAgentsAgentToolset20260401GlobInput, "grep": BetaManagedAgentsAgentToolset20260401GrepInput}


@pytest.mark.parametrize("name", sorted(SDK_INPUTS))
def test_each_tool_takes_the_inputs_the_sdk_defines(name):
    model = SDK_INPUTS[name]
    schema = AGENT_TOOLS[name].input_schema
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema["required"]) == {field for field, info in model.model_fields.items() if info.is_required()}


@pytest.fixture
async def sandbox(tmp_path):
    provider = ToolsetProvider(LocalSandboxProvider(root=str(tmp_path / "sandboxes"), timeout_s=10, output_limit=4000))
    box = await provider.provision()
    await box.prepare(Setup({"src/a.py": "one\ntwo\nthree\n", "src/deep/b.py": "x = two\n", "notes.md": "two two\n"}))
    yield box
    await provider.close()


async def test_read_write_and_edit_with_the_toolsets_inputs(sandbox):
    assert (await sandbox.execute("read", {"file_path": "src/a.py", "view_range": [2, 3]})).output == "two\nthree\n"
    assert (await sandbox.execute("read", {"file_path": "src/a.py", "view_range": [2, -1]})).output == "two\nthree\n"
    assert not (await sandbox.execute("write", {"file_path": "new/c.txt", "content": "hi\n"})).is_error
    assert (await sandbox.execute("read", {"file_path": "new/c.txt"})).output == "hi\n"
    twice = await sandbox.execute("edit", {"file_path": "notes.md", "old_string": "two", "new_string": "2"})
    assert twice.is_error  # must be unique, as the toolset's edit says
    every = await sandbox.execute("edit", {"file_path": "notes.md", "old_string": "two", "new_string": "2", "replace_all": True})
    assert not every.is_error and "2 replacement" in every.output
    assert (await sandbox.execute("read", {"file_path": "notes.md"})).output == "2 2\n"


async def test_glob_grep_and_bash(sandbox):
    assert (await sandbox.execute("glob", {"pattern": "**/*.py"})).output == "src/a.py\nsrc/deep/b.py"
    assert (await sandbox.execute("glob", {"pattern": "*.py", "path": "src"})).output == "src/a.py"
    assert (await sandbox.execute("glob", {"pattern": "*.rs"})).output == "no matches"
    assert (await sandbox.execute("glob", {"pattern": "../*"})).is_error
    found = await sandbox.execute("grep", {"pattern": "t[wh]", "path": "src"})
    assert sorted(found.output.splitlines()) == ["src/a.py:2:two", "src/a.py:3:three", "src/deep/b.py:1:x = two"]
    nothing = await sandbox.execute("grep", {"pattern": "absent"})
    assert (nothing.output.strip(), nothing.is_error) == ("no matches", False)
    assert (await sandbox.execute("bash", {"command": "echo $((6 * 7))", "timeout_ms": 5000})).output == "42\n"
    assert (await sandbox.execute("bash", {"restart": True})).output == "bash session restarted"
    missing = await sandbox.execute("bash", {})
    assert missing.is_error and "command is required" in missing.output
    wrong = await sandbox.execute("read", {"path": "src/a.py"})
    assert wrong.is_error and "read takes {file_path: string" in wrong.output


def test_doublestar_globs():
    assert glob_regex("**/*.py").fullmatch("a.py") and glob_regex("**/*.py").fullmatch("a/b/c.py")
    assert not glob_regex("*.py").fullmatch("a/b.py")
    assert glob_regex("src/{a,b}?.[jt]s").fullmatch("src/b1.ts") and not glob_regex("[!a]*").fullmatch("abc")


def policy_calls() -> list[tuple[str, dict]]:
    """The first call of every smoke task's policy, and a few more the policies make."""
    calls = [(c.name, c.input) for _, _, task in load_suite("smoke")
             if not isinstance(action := task.policy(Conversation([{"role": "user", "content": task.prompt}])), Reply)
             for c in ([action] if hasattr(action, "name") else action)]
    return calls + [("read_file", {"path": "a", "offset": 3, "limit": 2}), ("list_files", {"path": "docs", "recursive": False}),
                    ("bash", {"command": "ls", "timeout": 2.5}), ("write_file", {"path": "half"})]


@pytest.mark.parametrize("name, input", policy_calls())
def test_the_brains_calls_translate_to_the_toolset_and_back_unchanged(name, input):
    agent_name, agent_input = as_agent_call(name, input)
    assert agent_name in AGENT_TOOLS
    assert as_brain_call(agent_name, agent_input) == (name, input)


@pytest.mark.docker
async def test_the_toolset_runs_on_docker_hands(tmp_path, docker_image):
    from sandboxes.docker import DockerSandboxProvider

    provider = ToolsetProvider(DockerSandboxProvider(image=docker_image, timeout_s=20, output_limit=4000))
    try:
        box = await provider.provision()
        await box.prepare(Setup({"src/a.py": "one\ntwo\n", "notes.md": "two two\n"}))
        assert (await box.execute("glob", {"pattern": "**/*.py"})).output == "src/a.py"
        assert (await box.execute("grep", {"pattern": "tw.", "path": "src"})).output.strip() == "src/a.py:2:two"
        every = await box.execute("edit", {"file_path": "notes.md", "old_string": "two", "new_string": "2", "replace_all": True})
        assert not every.is_error, every.output
        assert (await box.execute("read", {"file_path": "notes.md", "view_range": [1, 1]})).output == "2 2\n"
    finally:
        await provider.close()
