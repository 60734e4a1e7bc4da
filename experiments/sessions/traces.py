"""Session logs as OpenTelemetry traces, with the GenAI semantic conventions.

One trace per session: an `invoke_agent` span over the whole log, a `chat MODEL` span per model call
(compactions too) with its token usage, finish reason and response id, and an `execute_tool NAME` span per
tool call, from its `tool.call` to its `tool.result`. Times come from the log (a model call ends at its event
and lasted `latency_ms`), so a trace can be made of any session, from any source, long after it ran. Spans go
to a JSON-lines file (one span per line, the SDK's JSON form).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from stores.base import Event, SessionInfo, SessionStore
from stores.events import ContextCompacted, ModelResponse, ToolCall, ToolResult, typed

SYSTEM = "anthropic"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _model_call(event: Event) -> tuple[str, dict[str, Any], int, int]:
    call = typed(event)
    usage, model = call.usage, (call.model or "unknown").removeprefix("replay:")
    finish = "compaction" if isinstance(call, ContextCompacted) else call.stop_reason or ""
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.system": SYSTEM, "gen_ai.request.model": model,
        "gen_ai.response.model": model, "gen_ai.usage.input_tokens": usage.get("input_tokens", 0),
        "gen_ai.usage.output_tokens": usage.get("output_tokens", 0),
        "gen_ai.usage.cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
        "gen_ai.usage.cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
        "gen_ai.response.finish_reasons": [finish],
        "harnesslab.position": event.position,
    }
    if call.request_id:
        attributes["gen_ai.response.id"] = call.request_id
    if call.ttft_ms is not None:
        attributes["harnesslab.ttft_ms"] = float(call.ttft_ms)
    end = _ns(event.ts)
    return f"chat {model}", attributes, end - _ns((call.latency_ms or 0) / 1000), end


def _tool_calls(events: list[Event]) -> Iterable[tuple[str, dict[str, Any], int, int]]:
    started = {ToolCall.read(e).tool_use_id: e for e in events if e.type == ToolCall.TYPE}
    for event in (e for e in events if e.type == ToolResult.TYPE):
        result = ToolResult.read(event)
        logged = started.get(result.tool_use_id)
        call = ToolCall.read(logged) if logged else ToolCall(result.tool_use_id)
        name = result.name or "unknown"
        attributes = {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": result.tool_use_id or "", "harnesslab.hand": call.hand or "",
            "harnesslab.is_error": bool(result.is_error), "harnesslab.position": event.position,
        }
        if call.hand_name:  # which of the session's hands ran it
            attributes["harnesslab.hand_name"] = call.hand_name
        end = _ns(event.ts)
        start = _ns(logged.ts) if logged else end - _ns((result.duration_ms or 0) / 1000)
        yield f"execute_tool {name}", attributes, start, end


def session_spans(tracer: Any, info: SessionInfo, events: list[Event]) -> int:
    """Record one session's trace with `tracer`; returns how many spans it has."""
    from opentelemetry import trace

    meta = info.meta
    root = tracer.start_span(f"invoke_agent {meta.get('task', 'session')}", start_time=_ns(info.created), attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.system": SYSTEM, "gen_ai.agent.name": "harnesslab",
        "gen_ai.conversation.id": info.id, "harnesslab.task": meta.get("task") or "", "harnesslab.suite": meta.get("suite") or "",
        "harnesslab.status": info.status, "harnesslab.events": len(events),
    })
    context = trace.set_span_in_context(root)
    calls = [_model_call(e) for e in events if e.type in (ModelResponse.TYPE, ContextCompacted.TYPE)]
    children = calls + list(_tool_calls(events))
    for name, attributes, start, end in sorted(children, key=lambda child: child[2]):
        kind = trace.SpanKind.CLIENT if attributes["gen_ai.operation.name"] == "chat" else trace.SpanKind.INTERNAL
        tracer.start_span(name, context=context, kind=kind, attributes=attributes, start_time=start).end(end_time=end)
    root.end(end_time=_ns(info.updated))
    return len(children) + 1


async def export_traces(store: SessionStore, path: Path) -> tuple[int, int]:
    """Write the traces of every session in `store` to `path`; returns (sessions, spans)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    infos = await store.sessions()
    path.parent.mkdir(parents=True, exist_ok=True)
    spans = 0
    with path.open("w") as out:
        provider = TracerProvider(resource=Resource.create({"service.name": "harnesslab"}))
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("harnesslab")
        for info in infos:
            spans += session_spans(tracer, info, await store.events(info.id))
        provider.shutdown()
    return len(infos), spans
