"""The Docker engine and the sandbox image, set up offline by the project itself.

`ensure_engine()`: if no engine answers, install Debian's docker.io (as root) and start dockerd with no
bridge network (`--bridge=none --iptables=false --ip-masq=false`), then wait for its socket.
`ensure_image()`: `debootstrap --variant=minbase` (with python3) into a folder, then `docker import`,
tagged by a hash of the recipe, so it is rebuilt only when the recipe changes. No container registry.
Both are idempotent: `harnesslab docker setup` (and `make docker`) run them.
`prune()` removes harnesslab's containers by label; run as `python -m sandboxes.docker_engine`, this module is
a provider's reaper (processes.children), which prunes the provider's containers when the provider's process ends.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sandboxes.base import SandboxError
from sandboxes.process import identity_alive

SUITE = "bookworm"
PACKAGES = ("python3", "coreutils", "findutils", "grep", "sed", "git")
IMAGE = "harnesslab-sandbox"
DOCKERD_LOG = Path("/var/log/harnesslab-dockerd.log")
LABEL = "harnesslab"  # on every container harnesslab makes; LABEL.provider names the provider (or run) that made it
OWNER = f"{LABEL}.owner"  # the process (process_identity) whose run the container belongs to
REMOVAL_WAIT_S = 60.0  # for a container someone else is removing (or that is changing state) to be gone
PUBLIC_UMASK = 0o022  # a run keeps its own files private (umask 077); the engine, apt and the image must not inherit that


class EngineUnavailable(SandboxError, RuntimeError):
    """No Docker engine answers, and none could be started here."""


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def ensure_engine(wait_s: float = 60.0) -> None:
    if engine_answers():
        return
    if os.environ.get("DOCKER_HOST"):
        raise EngineUnavailable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer `docker info`")
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers, and starting one needs root (or set DOCKER_HOST)")
    if shutil.which("dockerd") is None:
        _apt_install("docker.io")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, umask=PUBLIC_UMASK,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if engine_answers():
            return
        time.sleep(0.5)
    tail = DOCKERD_LOG.read_text(errors="replace")[-1500:] if DOCKERD_LOG.exists() else ""
    raise EngineUnavailable(f"dockerd did not answer within {wait_s:g}s; its log ends:\n{tail}")


def mirror() -> str:
    """The Debian mirror apt uses here (the only package source that is reachable): the first active
    `deb` or `URIs:` line of the files apt reads (*.list, *.sources), security archives aside."""
    folder = Path("/etc/apt/sources.list.d")
    sources = [Path("/etc/apt/sources.list"), *sorted(folder.glob("*.list")), *sorted(folder.glob("*.sources"))]
    for source in (s for s in sources if s.is_file()):
        for line in source.read_text().splitlines():
            if line.strip().startswith(("deb ", "URIs:")):
                for url in re.findall(r"https?://\S+", line):
                    if "debian" in url and "security" not in url:
                        return url
    return "http://deb.debian.org/debian"


def image_tag() -> str:
    recipe = f"{SUITE} minbase {' '.join(PACKAGES)}"
    return f"{IMAGE}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def image_present() -> bool:
    return subprocess.run(["docker", "image", "inspect", image_tag()], capture_output=True).returncode == 0


def ensure_image() -> str:
    """The tag of the sandbox image, built first if this engine does not have it."""
    ensure_engine()
    tag = image_tag()
    if image_present():
        return tag
    if os.geteuid() != 0:
        raise EngineUnavailable(f"image {tag} is missing and building it (debootstrap) needs root")
    if shutil.which("debootstrap") is None:
        _apt_install("debootstrap")
    with tempfile.TemporaryDirectory(prefix="harnesslab-rootfs-") as root:
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, root, mirror()], "debootstrap")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE, umask=PUBLIC_UMASK)
        imported = subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imported.returncode != 0:
            raise EngineUnavailable(f"docker import failed: {imported.stderr.strip()}")
    return tag


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        raise EngineUnavailable(f"{package} is not installed and installing it needs root")
    _run(["apt-get", "update", "-qq"], "apt-get update")
    _run(["apt-get", "install", "-y", "-qq", package], f"apt-get install {package}", env={"DEBIAN_FRONTEND": "noninteractive"})


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, umask=PUBLIC_UMASK)
    if done.returncode != 0:
        raise EngineUnavailable(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}")


def engine_env() -> dict[str, str]:
    """What docker.from_env reads to find the engine (DOCKER_HOST, DOCKER_CERT_PATH or ~/.docker, ...)."""
    return {key: value for key, value in os.environ.items() if key.startswith("DOCKER_") or key == "HOME"}


def engine_if_it_answers() -> Any:
    """A client of the engine (DOCKER_HOST and friends), or None if none answers: then nothing is there to remove."""
    import docker

    try:
        return docker.from_env().api
    except docker.errors.DockerException:
        return None


def prune(api: Any, labels: dict[str, str] | None = None, *, orphans_only: bool = False) -> int:
    """Remove harnesslab's containers (those with `labels`, or all of them); returns how many. `orphans_only`:
    only those whose owner (the OWNER label: the run or provider process that made them) no longer runs, so a
    prune never takes the sandboxes of a run still going.

    Every container is tried, whatever happens to another; the first failure is raised after."""
    wanted = [f"{LABEL}=1"] + [f"{k}={v}" for k, v in (labels or {}).items()]
    found = api.containers(all=True, filters={"label": wanted})
    if orphans_only:
        found = [c for c in found if not identity_alive((c.get("Labels") or {}).get(OWNER, ""))]
    failures = []
    for container in found:
        try:
            remove_container(api, container["Id"])
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
    return len(found)


def remove_container(api: Any, container_id: str) -> None:
    """Remove a container, killing it first; idempotent and race-safe. One already gone counts as removed; one
    that someone else is removing (or that is changing state: 409 Conflict) is retried until it is gone."""
    import docker

    deadline = time.monotonic() + REMOVAL_WAIT_S
    while True:
        try:
            api.remove_container(container_id, force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


async def _reap_when_stopped(config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The reaper (processes.children): it waits, and when it stops (its provider closing, or the provider's process
    ending, SIGKILL included) it removes every container with the provider's run label."""
    os.environ.update(config["engine"])
    labels = {f"{LABEL}.provider": config["run_label"]}

    def reap() -> None:
        api = engine_if_it_answers()
        if api is not None:
            try:
                prune(api, labels)
            finally:
                api.close()

    return {"pid": os.getpid()}, lambda: asyncio.to_thread(reap)


if __name__ == "__main__":
    from processes.children import serve

    serve(_reap_when_stopped)
