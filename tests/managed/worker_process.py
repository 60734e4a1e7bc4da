"""A self-hosted worker in a process of its own, as a user runs one on another machine: the SDK's EnvironmentWorker
against a `harnesslab serve`, its tools the agent toolset in FOLDER.

    python -m tests.managed.worker_process BASE_URL ENVIRONMENT_ID ENVIRONMENT_KEY FOLDER [--hang-edit]

`--hang-edit` makes its edit tool write FOLDER/.hanging and never return (a worker to SIGKILL in the middle of a call).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import anthropic
from anthropic.lib.tools import beta_async_tool
from anthropic.lib.tools.agent_toolset import beta_agent_toolset_20260401
from anthropic.types.beta import BetaManagedAgentsAgentToolset20260401EditInput

HANGING = ".hanging"


def toolset(folder: Path, hang_edit: bool):
    def tools(context):
        every = beta_agent_toolset_20260401(context)

        @beta_async_tool(name="edit", input_schema=BetaManagedAgentsAgentToolset20260401EditInput)
        async def hanging_edit(file_path: str, old_string: str, new_string: str, replace_all: bool | None = None) -> str:
            (folder / HANGING).write_text(file_path)
            await asyncio.Event().wait()
            return "never"

        return [hanging_edit if hang_edit and tool.name == "edit" else tool for tool in every]
    return tools


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "environment_id", "environment_key", "folder"):
        parser.add_argument(name)
    parser.add_argument("--hang-edit", action="store_true")
    args = parser.parse_args()
    folder = Path(args.folder)
    client = anthropic.AsyncAnthropic(base_url=args.url, api_key="unused")
    await client.beta.environments.work.worker(environment_id=args.environment_id, environment_key=args.environment_key,
                                               workdir=folder, tools=toolset(folder, args.hang_edit), max_idle=1.0).run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
