"""The Sandbox contract: every provider passes all of it, what it declares (sandboxes/base.py) included.

A new backend is one line in tests/conftest.py:PROVIDERS (the harness tests use that list too), and its config
in configs/sandbox/: sharing sandboxes between processes is tested on every config of that group.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from sandboxes.base import NotShared, Sandbox, SandboxLost, SandboxProvider, Setup, SetupFailed
from sandboxes.journal import starts

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_CONFIGS = sorted(path.stem for path in (ROOT / "configs" / "sandbox").glob("*.yaml"))


@pytest.fixture
async def sandbox(provider):
    return await provider.provision()


async def test_provider_satisfies_protocol(provider):
    assert isinstance(provider, SandboxProvider)
    assert {t.name for t in provider.tools} >= {"bash", "read_file", "write_file", "edit_file", "list_files"}


async def test_provider_subclasses_the_base_and_declares_what_runners_ask(provider):
    assert SandboxProvider in type(provider).__mro__  # subclassed: the declared hooks are there, with their defaults
    assert isinstance(provider.isolated, bool) and isinstance(provider.sandboxes_outlive_process, bool)
    assert (provider.keep, provider.journal) == (False, None)  # as made here: it keeps nothing, journals nothing
    await provider.start()  # a no-op, or getting ready early: provisioning works the same after
    sandbox = await provider.provision()
    assert isinstance(sandbox, Sandbox) and (sandbox.root is None or sandbox.root.is_dir())


# Run in another process: provisions a sandbox with the workers' config `for_workers` gave, uses it, and ends.
ANOTHER_PROCESS = """
import asyncio, json, sys
from hydra.utils import instantiate

async def main():
    provider = instantiate(json.loads(sys.argv[1]))
    sandbox = await provider.provision()
    wrote = await sandbox.execute("write_file", {"path": "left.txt", "content": "by a process now gone"}, key="k-1")
    assert not wrote.is_error, wrote.output
    await provider.close()
    print(sandbox.id)

asyncio.run(main())
"""


def sandbox_config(name: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        return OmegaConf.to_container(compose(config_name=f"sandbox/{name}"), resolve=True)["sandbox"]


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.docker if "docker" in name else ())
                                  for name in SANDBOX_CONFIGS])
async def test_sandboxes_that_outlive_their_process_are_shared_with_what_for_workers_gives(name, tmp_path, request):
    if "docker" in name:
        request.getfixturevalue("docker_image")  # the engine and image are there, or the test skips
    config, journal = sandbox_config(name), tmp_path / "journal.jsonl"
    kind = get_class(config["_target_"])
    async with kind.for_workers(config, journal) as shared:
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", ANOTHER_PROCESS, json.dumps(shared.workers)],
                                       cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        sandbox_id = done.stdout.split()[-1]
        driver = instantiate(shared.driver)
        try:
            assert driver.sandboxes_outlive_process and not driver.keep
            left = await driver.attach(sandbox_id)
            assert (await left.execute("read_file", {"path": "left.txt"})).output == "by a process now gone"
            assert starts(journal) == {("k-1", "write_file"): 1}
        finally:
            await driver.close()
    after = instantiate(shared.driver)  # nothing of the run's outlives it: the driver's close, or the context's exit
    try:
        with pytest.raises(SandboxLost):
            await after.attach(sandbox_id)
    finally:
        await after.close()


async def test_a_provider_whose_sandboxes_die_with_their_process_refuses_to_share_them(tmp_path):
    class Ephemeral(SandboxProvider):
        hand = "ephemeral"

        async def provision(self) -> Sandbox: ...

        async def attach(self, sandbox_id: str) -> Sandbox: ...

    assert not Ephemeral().sandboxes_outlive_process
    with pytest.raises(NotShared, match="cannot outlive the process .* use sandbox=local, namespace or docker"):
        async with Ephemeral.for_workers({}, tmp_path / "journal.jsonl"):
            pass


async def test_write_read_round_trip_with_unicode(sandbox):
    wrote = await sandbox.execute("write_file", {"path": "deep/dir/ü.txt", "content": "héllo ✓\n"})
    assert not wrote.is_error and "deep/dir/ü.txt" in wrote.output
    read = await sandbox.execute("read_file", {"path": "deep/dir/ü.txt"})
    assert (read.output, read.is_error) == ("héllo ✓\n", False)
    assert read.duration_ms >= 0


async def test_read_file_line_range(sandbox):
    await sandbox.execute("write_file", {"path": "f", "content": "".join(f"line {i}\n" for i in range(1, 11))})
    read = await sandbox.execute("read_file", {"path": "f", "offset": 3, "limit": 2})
    assert read.output == "line 3\nline 4\n"


async def test_edit_file_requires_exactly_one_match(sandbox):
    await sandbox.execute("write_file", {"path": "f.py", "content": "a = 1\nb = 1\n"})
    missing = await sandbox.execute("edit_file", {"path": "f.py", "old_string": "c = 1", "new_string": "c = 2"})
    assert missing.is_error and "not found" in missing.output
    ambiguous = await sandbox.execute("edit_file", {"path": "f.py", "old_string": "= 1", "new_string": "= 2"})
    assert ambiguous.is_error and "2 times" in ambiguous.output
    done = await sandbox.execute("edit_file", {"path": "f.py", "old_string": "b = 1", "new_string": "b = 2"})
    assert not done.is_error
    assert (await sandbox.execute("read_file", {"path": "f.py"})).output == "a = 1\nb = 2\n"


async def test_list_files(sandbox):
    for path in ("b.txt", "a/c.txt"):
        await sandbox.execute("write_file", {"path": path, "content": ""})
    listing = await sandbox.execute("list_files", {})
    assert listing.output.splitlines() == ["a/", "a/c.txt", "b.txt"]
    assert (await sandbox.execute("list_files", {"path": "a", "recursive": False})).output == "a/c.txt"
    assert (await sandbox.execute("list_files", {"path": "zzz"})).is_error


@pytest.mark.parametrize(
    "name, input, expected",
    [
        ("write_file", {"path": "x"}, "'content' is a required property. write_file takes {path: string, content: string}"),
        ("write_file", {"path": "x", "content": 3}, "at ['content']: 3 is not of type 'string'"),
        ("bash", {"command": "ls", "rm": True}, "Additional properties are not allowed"),
        ("read_file", "just a string", "is not of type 'object'"),
        ("read_file", {"path": "x", "offset": 0}, "0 is less than the minimum of 1"),
        ("teleport", {}, "unknown tool 'teleport'; available tools: bash, edit_file, list_files, read_file, write_file"),
    ],
)
async def test_bad_input_is_a_tool_error_naming_the_problem(sandbox, name, input, expected):
    result = await sandbox.execute(name, input)
    assert result.is_error
    assert expected in result.output


async def test_failing_command_is_data_with_exit_code(sandbox):
    result = await sandbox.execute("bash", {"command": "echo out; echo err >&2; exit 3"})
    assert result.is_error
    assert "out" in result.output and "err" in result.output and "[exit code 3]" in result.output


async def test_timeout_kills_the_whole_process_group(sandbox):
    started = time.monotonic()
    result = await sandbox.execute("bash", {"command": "sleep 60 & echo $! > child.pid; sleep 60", "timeout": 0.5})
    assert time.monotonic() - started < 5
    assert result.is_error and "timed out after 0.5s" in result.output
    await _assert_process_gone(sandbox)


async def test_background_children_do_not_outlive_the_call(sandbox):
    started = time.monotonic()
    result = await sandbox.execute("bash", {"command": "(sleep 60 & echo $! > child.pid); echo started"})
    assert time.monotonic() - started < 5
    assert not result.is_error and "started" in result.output
    await _assert_process_gone(sandbox)


async def _assert_process_gone(sandbox):
    pid = (await sandbox.execute("read_file", {"path": "child.pid"})).output.strip()
    for _ in range(50):
        # a killed process may linger as a zombie until its new parent reaps it: that counts as gone
        probe = await sandbox.execute(
            "bash", {"command": f"[ -e /proc/{pid} ] && ! grep -q '^State:[[:space:]]*Z' /proc/{pid}/status && echo alive || echo gone"}
        )
        if probe.output.strip() == "gone":
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"background process {pid} outlived its tool call")


async def test_output_is_capped_with_notice(sandbox):
    result = await sandbox.execute("bash", {"command": "head -c 1000000 /dev/zero | tr '\\0' a; echo END"})
    assert "END" in result.output  # the tail is kept
    assert "output truncated" in result.output and "of 1000004 bytes" in result.output
    assert len(result.output) < 4000 + 200


async def test_non_utf8_bytes_are_replaced_not_fatal(sandbox):
    result = await sandbox.execute("bash", {"command": "printf 'ok \\377\\376 fine'"})
    assert not result.is_error and result.output == "ok \ufffd\ufffd fine"
    await sandbox.execute("bash", {"command": "printf '\\377binary\\000' > blob"})
    assert "binary" in (await sandbox.execute("read_file", {"path": "blob"})).output
    edit = await sandbox.execute("edit_file", {"path": "blob", "old_string": "binary", "new_string": "x"})
    assert edit.is_error and "not UTF-8" in edit.output


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../escape.txt", "link/escape.txt"])
async def test_file_tools_cannot_leave_the_workspace(sandbox, path):
    await sandbox.execute("bash", {"command": "ln -s / link"})
    for name, input in [("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"}),
                        ("list_files", {"path": path}), ("edit_file", {"path": path, "old_string": "r", "new_string": "x"})]:
        result = await sandbox.execute(name, input)
        assert result.is_error and "outside the workspace" in result.output, (name, result.output)
    assert not os.path.exists("/escape.txt")


async def test_host_environment_does_not_leak(sandbox, monkeypatch):
    monkeypatch.setenv("HARNESSLAB_PLANTED_SECRET", "sk-planted-0123")
    result = await sandbox.execute("bash", {"command": "env"})
    assert "sk-planted-0123" not in result.output and "PATH=" in result.output


async def test_attach_by_id_reaches_the_same_workspace(provider, sandbox):
    await sandbox.execute("write_file", {"path": "shared.txt", "content": "from A"})
    other = await provider.attach(sandbox.id)
    assert (await other.execute("read_file", {"path": "shared.txt"})).output == "from A"


async def test_closed_sandbox_is_lost(provider, sandbox):
    await sandbox.close()
    with pytest.raises(SandboxLost):
        await sandbox.execute("bash", {"command": "true"})
    with pytest.raises(SandboxLost):
        await provider.attach(sandbox.id)
    with pytest.raises(SandboxLost):
        await provider.attach("not-an-id")


async def test_prepare_writes_files_and_runs_commands(sandbox):
    await sandbox.prepare(Setup({"src/a.txt": "A"}, ("cp src/a.txt b.txt",)))
    assert (await sandbox.execute("read_file", {"path": "b.txt"})).output == "A"
    with pytest.raises(SetupFailed, match="false"):
        await sandbox.prepare(Setup({}, ("false",)))


async def test_provider_close_removes_every_sandbox(provider):
    boxes = [await provider.provision() for _ in range(3)]
    await provider.close()
    for box in boxes:
        with pytest.raises(SandboxLost):
            await box.execute("list_files", {})


@pytest.fixture
def isolated(provider):
    if not provider.isolated:
        pytest.skip(f"{provider.hand} runs commands on the host by design: no isolation to test (a known difference)")
    return provider


async def test_isolated_commands_have_no_network_even_to_loopback(isolated):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        sandbox = await isolated.provision()
        probe = await sandbox.execute("bash", {"command": f"echo hi > /dev/tcp/127.0.0.1/{port} && echo CONNECTED"})
        assert "CONNECTED" not in probe.output and probe.is_error
    finally:
        listener.close()


async def test_isolated_commands_see_a_read_only_system_and_no_host_files(isolated, tmp_path):
    (tmp_path / "host-secret.txt").write_text("s3cret")
    sandbox = await isolated.provision()
    assert (await sandbox.execute("bash", {"command": "touch /usr/evil"})).is_error
    peek = await sandbox.execute("bash", {"command": f"cat {tmp_path}/host-secret.txt; ls /root"})
    assert peek.is_error and "s3cret" not in peek.output
    work = await sandbox.execute("bash", {"command": "echo ok > mine.txt && cat mine.txt && python3 -c 'print(2+2)'"})
    assert (work.is_error, work.output.split()) == (False, ["ok", "4"])


async def test_isolated_sandboxes_cannot_see_each_other(isolated):
    first, second = await isolated.provision(), await isolated.provision()
    await first.execute("write_file", {"path": "private.txt", "content": "first's"})
    where = first.root or "/nonexistent"  # the host folder of a workspace, where there is one
    look = await second.execute("bash", {"command": f"cat ../{first.id}/private.txt {where}/private.txt 2>&1; ls /workspace"})
    assert "first's" not in look.output
