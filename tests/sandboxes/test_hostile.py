"""Hostile hands: whatever a sandbox holds or a command does, every tool call ends as a tool result, in bounded
harness memory, and teardown cannot fail (docs/bounds.md). Every provider of tests/conftest.py runs these."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from sandboxes import local
from sandboxes.local import LocalSandboxProvider
from sandboxes.tools import MAX_INPUT_CHARS, MAX_INPUT_DEPTH
from sandboxes.workspace import MAX_EDIT_BYTES

PROJECT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 120  # turns a hang into a failure instead of a stuck suite; no call comes near it
SWAPS = 300  # rounds of read, write and list during a swapper (against the old code: dozens of escapes)


@pytest.fixture
async def sandbox(provider):
    return await provider.provision()


async def call(sandbox, name, input):
    return await asyncio.wait_for(sandbox.execute(name, input), HANG_GUARD_S)


async def test_a_deep_tree_is_listed_and_torn_down(provider, sandbox, tmp_path):
    levels = "d/" * 100  # 1,100 levels in 11 steps: each step's path stays short
    made = await call(sandbox, "bash", {"command": f"for i in $(seq 11); do mkdir -p {levels} && cd {levels} || exit 1; done"})
    assert not made.is_error, made.output
    listing = await call(sandbox, "list_files", {})
    assert not listing.is_error and listing.output.startswith("d/\nd/d/\n")
    await provider.close()  # the sandbox's teardown, then the provider's: neither may raise
    if provider.hand != "docker":
        assert not (tmp_path / "sandboxes").exists() or not list((tmp_path / "sandboxes").iterdir())


@pytest.mark.parametrize("name, input", [
    ("read_file", {"path": "pipe"}),
    ("write_file", {"path": "pipe", "content": "x"}),
    ("edit_file", {"path": "pipe", "old_string": "a", "new_string": "b"}),
])
async def test_a_fifo_is_refused_not_waited_on(sandbox, name, input):
    assert not (await call(sandbox, "bash", {"command": "mkfifo pipe"})).is_error
    result = await call(sandbox, name, input)
    assert result.is_error and "pipe is not a regular file" in result.output


async def test_file_names_that_are_not_utf8_are_listed_escaped(sandbox):
    assert not (await call(sandbox, "bash", {"command": r"touch $'caf\xe9' && mkdir $'d\xff' && touch $'d\xff/x'"})).is_error
    listing = await call(sandbox, "list_files", {})
    assert not listing.is_error
    assert listing.output.splitlines() == ["caf\\xe9", "d\\xff/", "d\\xff/x"]
    listing.output.encode("utf-8")  # valid text for the log and the model


@pytest.mark.parametrize("range_, expected", [
    ({"offset": 2.0}, "line 2\nline 3\n"),  # a JSON integer written as 2.0 passes the schema
    ({"offset": 2, "limit": 2 ** 63}, "line 2\nline 3\n"),
    ({"limit": 10 ** 30}, "line 1\nline 2\nline 3\n"),
])
async def test_read_file_takes_any_integer_range(sandbox, range_, expected):
    await call(sandbox, "write_file", {"path": "f", "content": "line 1\nline 2\nline 3\n"})
    read = await call(sandbox, "read_file", {"path": "f", **range_})
    assert (read.output, read.is_error) == (expected, False)


@pytest.mark.parametrize("offset", [4, 2 ** 63, 10 ** 30])
async def test_read_file_past_the_end_says_how_long_the_file_is(sandbox, offset):
    await call(sandbox, "write_file", {"path": "f", "content": "line 1\nline 2\nline 3"})
    read = await call(sandbox, "read_file", {"path": "f", "offset": offset})
    assert read.is_error and f"offset {offset} is past the end of f, which has 3 line(s)" in read.output


async def test_a_nul_byte_in_a_command_is_a_tool_error(sandbox):
    result = await call(sandbox, "bash", {"command": "echo a\x00b"})
    assert result.is_error and "NUL byte (at character 6)" in result.output
    assert not (await call(sandbox, "write_file", {"path": "f", "content": "a\x00b"})).is_error  # content may hold one
    assert (await call(sandbox, "read_file", {"path": "f"})).output == "a\x00b"


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("input", [
    {"path": nested(100_000)},
    {"path": "f", "content": {"a": nested(5_000)}},
])
async def test_deeply_nested_input_is_a_tool_error(sandbox, input):
    result = await call(sandbox, "write_file", input)
    assert result.is_error and f"nested more than {MAX_INPUT_DEPTH} levels deep" in result.output
    assert len(result.output) < 1000


async def test_a_huge_input_is_a_tool_error(sandbox):
    result = await call(sandbox, "write_file", {"path": "f", "content": "x" * (MAX_INPUT_CHARS + 1)})
    assert result.is_error and f"more than {MAX_INPUT_CHARS} characters" in result.output


def reset_peak_rss() -> float:
    """Reset this process's peak RSS to its current RSS (Linux clear_refs); that RSS in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return rss_mb("VmRSS")


def rss_mb(field: str = "VmHWM") -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


async def test_a_huge_file_costs_the_harness_bounded_memory(sandbox):
    size_mb = 200  # sparse: no disk, no tmpfs pages
    assert not (await call(sandbox, "bash", {"command": f"truncate -s {size_mb}M big"})).is_error
    before = reset_peak_rss()
    read = await call(sandbox, "read_file", {"path": "big"})
    ranged = await call(sandbox, "read_file", {"path": "big", "offset": 1, "limit": 5})
    edit = await call(sandbox, "edit_file", {"path": "big", "old_string": "\x00", "new_string": "x"})
    grew = rss_mb() - before
    print(f"\n[{sandbox.hand}] peak RSS growth over read_file, a line range and edit_file of a {size_mb} MB file: {grew:.1f} MB")
    assert not read.is_error and f"of {size_mb << 20} bytes omitted" in read.output and len(read.output) < 4200
    assert not ranged.is_error and len(ranged.output) < 4200
    assert edit.is_error and f"larger than edit_file's limit of {MAX_EDIT_BYTES} bytes" in edit.output
    assert grew < 64


async def test_an_output_flood_is_capped(sandbox):
    before = reset_peak_rss()
    flood = await call(sandbox, "bash", {"command": "head -c 200M /dev/zero | tr '\\0' x"})
    grew = rss_mb() - before
    assert not flood.is_error and "of 209715200 bytes omitted" in flood.output and len(flood.output) < 4200
    assert grew < 64


@pytest.mark.parametrize("writes", [
    "echo 'not json' > {fd}; echo '{{}}' > {fd}; printf 'unterminated' > {fd}",
    "head -c 64M /dev/zero > {fd}",  # a flood, without a newline
])
@pytest.mark.parametrize("process", ["$PPID", "1"])
async def test_a_command_cannot_write_into_the_hands_channel(sandbox, process, writes):
    """On Docker the channel to the harness is the executor's stdout (the command's parent), which docker-init
    (PID 1) holds too. Whatever a command writes there costs at most that call."""
    before = reset_peak_rss()
    await call(sandbox, "bash", {"command": writes.format(fd=f"/proc/{process}/fd/1") + "; true"})
    after = await call(sandbox, "bash", {"command": "echo still here"})
    assert (after.output, after.is_error) == ("still here\n", False)
    assert rss_mb() - before < 64


def processes_with(marker: str) -> list[int]:
    """Processes on this host whose command line holds `marker` (a container's too, on a local engine) and that
    may still run: not a zombie, no SIGKILL pending (such a one never runs again)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                status = dict(line.split(":", 1) for line in Path(f"/proc/{entry}/status").read_text().splitlines())
                pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
                if not status["State"].strip().startswith("Z") and not pending & 1 << (signal.SIGKILL - 1):
                    found.append(int(entry))
        except (OSError, KeyError, ValueError):
            continue
    return found


@pytest.mark.parametrize("detach", [
    "setsid sleep {seconds} > /dev/null 2>&1 < /dev/null &",
    "setsid sleep {seconds} &",  # holding the call's output pipe
    "nohup setsid sh -c 'sleep {seconds}' > /dev/null 2>&1 &",
])
async def test_a_detached_process_does_not_outlive_its_call(sandbox, detach):
    seconds = f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10 ** 6}"  # a marker of this test
    try:
        started = await call(sandbox, "bash", {"command": detach.format(seconds=seconds) + " sleep 0.2"})
        assert not started.is_error, started.output
        assert processes_with(f"sleep\x00{seconds}") == []
    finally:
        for pid in processes_with(f"sleep\x00{seconds}"):  # left by a failing run: ours to end
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per sandbox needs root")
async def test_sandboxes_never_share_a_uid(tmp_path, monkeypatch):
    """Two ids that hash to the same uid: the second sandbox gets another."""
    colliding = [uuid.UUID(int=n << 64) for n in (1 + (1 << 24), 1)]
    real = uuid.uuid4
    monkeypatch.setattr(local.uuid, "uuid4", lambda: colliding.pop() if colliding else real())
    provider = LocalSandboxProvider(root=str(tmp_path / "sandboxes"))
    try:
        first, second = await provider.provision(), await provider.provision()
        assert first.user != second.user
    finally:
        await provider.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per sandbox needs root")
async def test_a_thousand_concurrent_sandboxes_have_a_thousand_uids(tmp_path, monkeypatch):
    """From a range only twice as large, where ids hashed to uids would share ~200 of them."""
    start = local.PER_SANDBOX_UIDS.start + uuid.uuid4().int % (len(local.PER_SANDBOX_UIDS) - 2000)
    monkeypatch.setattr(local, "PER_SANDBOX_UIDS", range(start, start + 2000))
    provider = LocalSandboxProvider(root=str(tmp_path / "sandboxes"))
    try:
        sandboxes = await asyncio.gather(*(provider.provision() for _ in range(1000)))
        assert len({sandbox.user for sandbox in sandboxes}) == 1000
    finally:
        await provider.close()


SCRIPT = textwrap.dedent("""
    import asyncio, sys, time
    from sandboxes import workspace
    from sandboxes.local import LocalSandboxProvider

    workspace.file_tool = lambda *args: time.sleep(3600)  # a file tool stuck in the kernel

    async def main():
        provider = LocalSandboxProvider(root=sys.argv[1], user=None if sys.argv[2] == "none" else sys.argv[2])
        sandbox = await provider.provision()
        try:
            await asyncio.wait_for(sandbox.execute("read_file", {"path": "x"}), 0.5)  # as Ctrl-C cancels it
        except asyncio.TimeoutError:
            print("cancelled", flush=True)
        await provider.close()

    asyncio.run(main())
""")


@pytest.mark.parametrize("user", ["none", local.PER_SANDBOX])  # on the event loop, in a thread as another user
def test_a_stuck_file_tool_does_not_keep_the_harness_from_exiting(tmp_path, user):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "sandboxes"), user], cwd=PROJECT,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert (done.returncode, done.stdout) == (0, "cancelled\n"), done.stderr


SWAPPER = textwrap.dedent("""
    import ctypes, os, sys
    exchange = ctypes.CDLL(None, use_errno=True).renameat2
    os.mkdir("d")
    open("d/f", "w").write("inside")
    os.symlink(sys.argv[1], "x")
    open("swapping", "w").close()
    while not os.path.exists("stop"):  # d: a folder of the workspace, then a link to a folder outside, and back
        if exchange(-100, b"d", -100, b"x", 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE: d always exists
            sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
""")


@pytest.fixture
def outside(tmp_path):
    """A folder outside every workspace that the sandbox's user could read and write, if a file tool led there."""
    folder = tmp_path / "outside"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    (folder / "f").write_text("SECRET")
    (folder / "f").chmod(0o666)
    (folder / "only-outside").touch()
    return folder


@pytest.mark.parametrize("provider", ["local", "namespace"], indirect=True)
async def test_a_symlink_swapped_in_mid_call_does_not_lead_outside(sandbox, outside):
    swapper = asyncio.create_task(call(sandbox, "bash", {"command": f"python3 -c '{SWAPPER}' {outside}", "timeout": 60}))
    try:
        while not (sandbox.root / "swapping").exists() and not swapper.done():
            await asyncio.sleep(0.01)
        seen = []
        for _ in range(SWAPS):
            seen.append((await call(sandbox, "read_file", {"path": "d/f"})).output)
            seen.append((await call(sandbox, "write_file", {"path": "d/f", "content": "written"})).output)
            seen.append((await call(sandbox, "list_files", {"path": "d"})).output)
    finally:
        (sandbox.root / "stop").touch()
        done = await swapper
    assert not done.is_error, done.output
    assert (outside / "f").read_text() == "SECRET" and sorted(os.listdir(outside)) == ["f", "only-outside"]
    assert not [output for output in seen if "SECRET" in output or "only-outside" in output]
    assert any(output == "inside" or output == "written" for output in seen)  # the race was run, not missed


GROUPS = textwrap.dedent("""
    import os, sys, threading
    from sandboxes.uid_claims import as_user

    os.setgroups([4242])  # root with a supplementary group, as on many hosts
    main = threading.get_native_id()

    def read():
        groups = [open(f"/proc/self/task/{tid}/status").read().split("Groups:")[1].split("\\n")[0].split()
                  for tid in (threading.get_native_id(), main)]
        try:
            open(sys.argv[1]).read()
            return "read", groups
        except PermissionError:
            return "refused", groups

    found = []
    worker = threading.Thread(target=lambda: found.append(as_user((int(sys.argv[2]), int(sys.argv[2])), read)))
    worker.start()
    worker.join()
    print(found[0], os.getgroups())
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_file_tools_drop_supplementary_groups_as_commands_do(tmp_path):
    """A file only root's supplementary group may read: commands cannot (setpriv --clear-groups), nor file tools."""
    secret = tmp_path / "group-secret"
    secret.write_text("SECRET")
    os.chown(secret, 0, 4242)
    secret.chmod(0o640)
    done = subprocess.run([sys.executable, "-c", GROUPS, str(secret), str(local.PER_SANDBOX_UIDS.start + 999)],
                          cwd=PROJECT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.stdout == "('refused', [[], ['4242']]) [4242]\n", done.stderr  # only the file tool's thread lost it
