"""The Docker engine and the sandbox image, set up offline by the project itself.

`ensure_engine()`: if no engine answers, install Debian's docker.io (as root) and start dockerd with no
bridge network (`--bridge=none --iptables=false --ip-masq=false`), then wait for its socket.
`ensure_image()`: `debootstrap --variant=minbase` (with python3) into a folder, then `docker import`,
tagged by a hash of the recipe, so it is rebuilt only when the recipe changes. No container registry.
Both are idempotent: `harnesslab docker setup` (and `make docker`) run them.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sandboxes.base import SandboxError

SUITE = "bookworm"
PACKAGES = ("python3", "coreutils", "findutils", "grep", "sed", "git")
IMAGE = "harnesslab-sandbox"
DOCKERD_LOG = Path("/var/log/harnesslab-dockerd.log")


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
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
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
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
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
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise EngineUnavailable(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}")
