"""Rules on prompt-caching breakpoints (cache_control): their values, at most four, longer TTLs first.

Source: https://docs.claude.com/en/docs/build-with-claude/prompt-caching, and the SDK's
anthropic.types.cache_control_ephemeral_param.CacheControlEphemeralParam.
"""
from __future__ import annotations

from harnesses.emulator.rules import Request, invalid, rule

CACHING = "https://docs.claude.com/en/docs/build-with-claude/prompt-caching"
MAX_BREAKPOINTS = 4
TTLS = ("5m", "1h")


@rule(CACHING + "; anthropic.types.CacheControlEphemeralParam")
def cache_control_values(request: Request) -> None:
    """A cache_control is {"type": "ephemeral"}, with an optional ttl of '5m' or '1h'."""
    for where, mark in request.cache_marks:
        field = f"{where}.cache_control" if where else "cache_control"
        if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
            raise invalid(f"{field}.type: Input should be 'ephemeral'")
        if "ttl" in mark and mark["ttl"] not in TTLS:
            raise invalid(f"{field}.ephemeral.ttl: Input should be '5m' or '1h'")
        extra = next((key for key in mark if key not in ("type", "ttl")), None)
        if extra is not None:
            raise invalid(f"{field}.ephemeral.{extra}: Extra inputs are not permitted")


@rule(CACHING + "#structuring-your-prompt")
def cache_breakpoints_at_most_four(request: Request) -> None:
    """At most four blocks of a request set cache_control (the top-level one takes a place too)."""
    found = len(request.cache_marks)
    if found > MAX_BREAKPOINTS:
        raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}.")


@rule(CACHING + "#mixing-different-ttls")
def cache_ttl_order(request: Request) -> None:
    """Breakpoints with a longer TTL come before shorter ones: no '1h' after a '5m'."""
    shorter = None
    for where, mark in request.cache_marks:
        ttl = mark.get("ttl", "5m")
        if ttl == "5m" and shorter is None:
            shorter = where or "cache_control"
        elif ttl == "1h" and shorter is not None:
            raise invalid(f"{where or 'cache_control'}.cache_control.ttl: a cache_control with ttl '1h' must come before "
                          f"any with ttl '5m' (tools, then system, then messages), but {shorter} has one with '5m'")
