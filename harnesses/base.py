"""The brain: Harness, Model and ContextStrategy protocols and the values that pass between them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from stores.base import Event


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

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int = 4096
    purpose: str = "turn"  # or "compaction": a call the context strategy makes for itself (replay answers each from its own log)


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


@runtime_checkable
class Model(Protocol):
    name: str

    async def respond(self, request: ModelRequest) -> ModelResponse:
        """One model call, streamed underneath; raises ModelError when it cannot answer."""


@runtime_checkable
class ContextStrategy(Protocol):
    async def build(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """Turn the session log into the model's messages."""


@runtime_checkable
class Harness(Protocol):
    async def wake(self, session_id: str) -> Outcome:
        """Run the session from whatever its log says until it ends or needs input."""
