"""The brain: the Harness, Model and ContextStrategy contracts and the values that pass between them.

Each contract is a base class that declares every hook the code calls on such a part: the required ones are
abstract, the optional ones are no-ops here (as inspect_ai's SandboxEnvironment declares its lifecycle hooks).
The code calls hooks directly, never probing with getattr, so a part must subclass its base. A public method of
a part's class whose name is close to a hook's but is none (`before_cal`) is refused when the class is defined:
a misspelt hook would otherwise never run, silently.
"""
from __future__ import annotations

import abc
import difflib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from stores.base import Event

if TYPE_CHECKING:
    from harnesses.log import SessionLog
    from sandboxes.base import ToolResult
    from sandboxes.tools import ToolSpec


class HarnessError(Exception):
    """Base of every error the harness side raises."""


class ModelError(HarnessError, RuntimeError):
    """The model could not answer (after whatever retries the backend makes)."""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    # The server's own compaction steps (usage.iterations of type compaction): billed, but not in the fields above
    compaction_input_tokens: int = 0
    compaction_output_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counts as logged; the compaction ones only when a server compacted (older logs have none)."""
        return {k: v for k, v in asdict(self).items() if v or not k.startswith("compaction_")}


@dataclass(frozen=True, slots=True)
class ModelRequest:
    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int = 4096
    purpose: str = "turn"  # or "compaction": a call the context strategy makes for itself (replay answers each from its own log)
    options: dict[str, Any] = field(default_factory=dict)  # more Messages API fields (context_management, thinking)
    betas: tuple[str, ...] = ()  # anthropic-beta values: sent through the SDK's beta client when there are any


@dataclass(frozen=True, slots=True)
class ModelResponse:
    content: list[dict[str, Any]]  # Messages API content blocks: text and tool_use
    stop_reason: str
    usage: Usage = Usage()
    ttft_ms: float = 0.0  # request sent -> first content token
    latency_ms: float = 0.0  # request sent -> message complete
    model: str = ""
    request_id: str | None = None
    retries: tuple[dict[str, Any], ...] = ()  # one entry per failed attempt before this answer
    server_ttft_ms: float | None = None  # the TTFT the server says it took (the emulator does; the API does not)
    context_management: dict[str, Any] | None = None  # what server-side context management applied (applied_edits)

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [block for block in self.content if block.get("type") == "tool_use"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one `wake` achieved."""

    session_id: str
    status: str  # "completed" | "failed" | "awaiting_input" | "conflict"
    reason: str = ""
    final_text: str = ""
    sandbox_id: str | None = None


class Part(abc.ABC):  # noqa: B024 (the contracts that subclass it declare the abstract hooks)
    """Base of the contracts below; each declares its hooks in its own body (a direct subclass of Part)."""

    @property
    def name(self) -> str:
        """What runs record and report this part under; by default its class's name."""
        return type(self).__name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if Part not in cls.__bases__:
            refuse_misspelt_hooks(cls)


def hooks_of(cls: type) -> set[str]:
    """The hooks a part's contract declares: the public names of Part and of its contract's body."""
    return {name for base in cls.__mro__ if base is Part or Part in base.__bases__
            for name in (*vars(base), *base.__dict__.get("__annotations__", {})) if not name.startswith("_")}


def refuse_misspelt_hooks(cls: type) -> None:
    """TypeError if `cls` defines a public method close to a hook of its contract that is not one (data, such as a
    counter `builds`, is not checked; nor is a private name)."""
    hooks = hooks_of(cls)
    for name, value in vars(cls).items():
        if name.startswith("_") or name in hooks or not (callable(value) or isinstance(value, (property, classmethod, staticmethod))):
            continue
        close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.8)
        if close:
            raise TypeError(f"{cls.__qualname__}.{name} is not a hook of its contract, so nothing would call it: did "
                            f"you mean {close[0]}? Hooks: {', '.join(sorted(hooks))} (harnesses/base.py)")


class Model(Part):
    """Answers model requests. `respond` is required; `start`, `close` and `server_usage` are optional."""

    @abc.abstractmethod
    async def respond(self, request: ModelRequest) -> ModelResponse:
        """One model call, streamed underneath; raises ModelError when it cannot answer."""

    async def start(self) -> None:
        """Get ready (a client, a server) before the first session is timed; by default nothing."""

    async def close(self) -> None:
        """Release whatever `start` or `respond` opened; by default nothing."""

    def server_usage(self) -> tuple[float | None, float | None]:
        """Peak memory (MB) and CPU time (s) of a server process the model runs for itself; by default none."""
        return None, None


class ContextStrategy(Part):
    """Turns the session log into the model's messages. `build` is required; the rest is optional: tools the
    strategy answers itself from the log (recall, memory), and upkeep of the log before each call (compaction)."""

    tools: Sequence[ToolSpec] = ()  # offered to the model beside the sandbox's; each call goes to `run_tool`

    @abc.abstractmethod
    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """Turn the session log into the model's messages."""

    async def before_call(self, session: SessionLog, model: Model) -> None:
        """Before each model call of the loop, maintain the log (e.g. append a summary); by default nothing."""

    def shape(self, request: ModelRequest) -> ModelRequest:
        """The loop's request as this strategy sends it: e.g. with the API's server-side context management
        (`options`, `betas`) or a tool of the API's own; by default unchanged."""
        return request

    async def run_tool(self, name: str, input: Any, events: Sequence[Event]) -> ToolResult:
        """Answer a call of one of `tools` from the log; bad input is an error result, not an exception. Only a
        strategy that offers tools is asked."""
        raise NotImplementedError(f"{type(self).__name__} offers tools but does not define run_tool")


class Harness(Part):
    """Runs sessions from their logs. `wake` is required."""

    @abc.abstractmethod
    async def wake(self, session_id: str) -> Outcome:
        """Run the session from whatever its log says until it ends or needs input."""
