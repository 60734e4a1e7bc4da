"""A Ctrl-C (or `kill PID`) of a run with Docker hands leaves nothing behind: no container of the run, no
temporary folder."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

from tests.experiments.cli.test_cli import HARNESSLAB
from tests.sandboxes.test_docker_cleanup import labelled

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def interactive() -> None:
    """In the child: Ctrl-C interrupts, as in a terminal (a shell's background job would ignore it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


WORKERS = ["faults=harness_kill", "run.workers=2"]


@pytest.mark.parametrize("mode, how", [([], "ctrl-c"), (WORKERS, "ctrl-c"), (WORKERS, "kill")],
                         ids=["in-process-ctrl-c", "workers-ctrl-c", "workers-kill"])
def test_an_interrupted_docker_run_leaves_no_container_and_no_temporary_folder(docker_image, tmp_path, mode, how):
    label, temp = f"test-interrupt-{uuid.uuid4().hex[:12]}", tmp_path / "tmp"
    temp.mkdir()
    run = subprocess.Popen(
        [HARNESSLAB, "run", "sandbox=docker", "tasks.repeat=20", f"sandbox.run_label={label}", *mode],
        cwd=tmp_path, env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, preexec_fn=interactive,
    )
    try:
        while not labelled(label) and run.poll() is None:  # until the run's first containers exist
            time.sleep(0.05)
        assert run.poll() is None, f"the run ended before any container of it existed:\n{run.stderr.read()[-3000:]}"
        if how == "ctrl-c":
            os.killpg(run.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group (workers too)
        else:
            os.kill(run.pid, signal.SIGTERM)  # the run's own process only
        _, stderr = run.communicate(timeout=300)  # a hang's bound: the cleanup takes seconds
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]  # interrupted, and its cleanup raised nothing
    assert "harnesslab: interrupted" in stderr
    assert labelled(label) == []
    assert list(temp.iterdir()) == []
