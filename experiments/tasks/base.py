"""Tasks: a prompt, the workspace it starts from, a check run in the sandbox, and a solver policy."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from harnesses.models.offline_brain import Policy
from sandboxes.base import Sandbox

SYSTEM_PROMPT = (
    "You are a careful software agent working in a sandboxed workspace. Use the tools to inspect "
    "and change files; when the task is done, reply with a short final answer."
)


@dataclass(frozen=True, slots=True)
class Verdict:
    success: bool
    detail: str = ""


class CheckContext:
    """What a check may look at: the final reply, and the session's sandbox (provisioned if it had none)."""

    def __init__(self, final_text: str, sandbox: Callable[[], Awaitable[Sandbox]]):
        self.final_text = final_text
        self._sandbox = sandbox

    async def sandbox(self) -> Sandbox:
        return await self._sandbox()


Check = Callable[[CheckContext], Awaitable[Verdict]]


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    prompt: str
    policy: Policy
    check: Check
    files: dict[str, str] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    tools: tuple[str, ...] | None = None  # None: every tool the sandbox offers
    repos: tuple[dict[str, str], ...] = ()  # {url, dest}: cloned through the credential proxy at setup
    credentials: dict[str, list[str]] | None = None  # {tools, targets} the proxy is to grant the session

    def meta(self, suite: str, instance: int = 0) -> dict[str, Any]:
        """What the session log records about the task (`session.created` data)."""
        meta = {
            "task": self.name,
            "suite": suite,
            "instance": instance,
            "system": SYSTEM_PROMPT,
            "tools": list(self.tools) if self.tools is not None else None,
            "setup": {"files": self.files, "commands": list(self.commands)},
        }
        if self.repos:
            meta["setup"]["repos"] = [dict(repo) for repo in self.repos]
        if self.credentials:
            meta["credentials"] = {key: list(value) for key, value in self.credentials.items()}
        return meta


# -- checks -----------------------------------------------------------------------------------


def file_equals(path: str, expected: str) -> Check:
    async def check(ctx: CheckContext) -> Verdict:
        result = await (await ctx.sandbox()).execute("read_file", {"path": path})
        if result.is_error:
            return Verdict(False, f"{path}: {result.output}")
        if result.output != expected:
            return Verdict(False, f"{path} holds {result.output[:80]!r}, expected {expected[:80]!r}")
        return Verdict(True, f"{path} is as expected")

    return check


def json_equals(path: str, expected: Any) -> Check:
    async def check(ctx: CheckContext) -> Verdict:
        result = await (await ctx.sandbox()).execute("read_file", {"path": path})
        if result.is_error:
            return Verdict(False, f"{path}: {result.output}")
        try:
            found = json.loads(result.output)
        except ValueError as exc:
            return Verdict(False, f"{path} is not valid JSON: {exc}")
        return Verdict(found == expected, f"{path} holds {found!r}, expected {expected!r}")

    return check


def command_passes(command: str) -> Check:
    async def check(ctx: CheckContext) -> Verdict:
        result = await (await ctx.sandbox()).execute("bash", {"command": command})
        return Verdict(not result.is_error, f"`{command}`: {result.output.strip()[-200:] or 'ok'}")

    return check


def reply_contains(text: str) -> Check:
    async def check(ctx: CheckContext) -> Verdict:
        found = text in ctx.final_text
        return Verdict(found, f"reply {'contains' if found else 'lacks'} {text!r}: {ctx.final_text[:80]!r}")

    return check


def all_of(*checks: Check) -> Check:
    async def check(ctx: CheckContext) -> Verdict:
        details = []
        for part in checks:
            verdict = await part(ctx)
            details.append(verdict.detail)
            if not verdict.success:
                return Verdict(False, "; ".join(details))
        return Verdict(True, "; ".join(details))

    return check
