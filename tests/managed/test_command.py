"""`harnesslab serve` as a user starts it: a process that prints its base URL and serves the SDK until stopped."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import anthropic

from tests.managed.helpers import new_session, prompt, turn


def test_harnesslab_serve_prints_its_url_and_serves_a_turn(tmp_path):
    command = [str(Path(sys.executable).with_name("harnesslab")), "serve", "--port", "0", "--environment-key", "envkey_test"]
    server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+) ", first)
        assert url, first + server.stderr.read() if server.poll() is not None else first
        client = anthropic.Anthropic(base_url=url.group(1), api_key="any", _strict_response_validation=True)
        session_id = new_session(client, "greeting")
        assert turn(client, session_id, prompt("greeting"))[-1].stop_reason.type == "end_turn"
        assert (tmp_path / ".harnesslab/serve/sessions.sqlite").is_file()  # the default store, in a place of its own
        assert "envkey_test" in server.stdout.readline() + server.stdout.readline()
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
