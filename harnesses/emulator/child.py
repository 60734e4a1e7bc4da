"""The Messages-API emulator in a process of its own (`model.serve=process`): no work of the harness
can delay its answers, as none can delay a remote API's. Started by EmulatorModel through
processes.children.Child; its config (policies, latency, faults, cache_min_tokens; strict and models if not the defaults) comes on
stdin as JSON."""
from __future__ import annotations

import gc
from typing import Any

from harnesses.emulator.server import EmulatorServer
from harnesses.emulator.service import FaultProfile, LatencyProfile
from harnesses.models.offline_brain import load_policies
from processes.children import serve


async def start(config: dict[str, Any]):
    server = EmulatorServer(
        load_policies(config["policies"]), LatencyProfile(**config["latency"]), FaultProfile(**config["faults"]),
        config["cache_min_tokens"], config.get("strict", True), config.get("models"),
    )
    url = await server.start()
    gc.freeze()  # what it loaded lives as long as it does: a full collection then walks only the open streams
    return {"url": url}, server.stop


if __name__ == "__main__":
    serve(start)
