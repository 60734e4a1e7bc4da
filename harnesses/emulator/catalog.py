"""The models the emulator knows, with the limits of the models they stand for; any other name is a 404.

The table is configuration: `model.models` (configs/model/emulator.yaml) adds entries or replaces these, as
`name: {context_window, max_output_tokens, prefill, compaction_min_trigger}`. Limits are the models overview's
(https://platform.claude.com/docs/en/about-claude/models/overview); prefill ended with the 4.6 models
(https://platform.claude.com/docs/en/about-claude/models/whats-new-claude-4-6, breaking changes). The least
compaction trigger is the compaction guide's 50,000 input tokens; the emulator's own stand-ins (claude-emulated*)
take triggers from 1,000, scaled to the testbed's tasks as cache_min_tokens is, so that their logs can compact.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class ModelLimits:
    context_window: int  # input and output tokens together
    max_output_tokens: int  # the most max_tokens may ask for
    prefill: bool = True  # whether a final assistant message (prefill) is accepted
    compaction_min_trigger: int = 50_000  # the least input-token trigger a compact_20260112 edit may set

    def __post_init__(self) -> None:
        for name in ("context_window", "max_output_tokens", "compaction_min_trigger"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}; valid: a whole number >= 1")
        if not isinstance(self.prefill, bool):
            raise ValueError(f"prefill={self.prefill!r}; valid: true or false")


STAND_IN_MIN_TRIGGER = 1_000  # the stand-ins' least compaction trigger: the testbed's long tasks stay under 50,000

KNOWN_MODELS: dict[str, ModelLimits] = {
    # the default: a stand-in with the limits of Claude Sonnet 4.5, the last Sonnet that takes a prefill
    "claude-emulated": ModelLimits(200_000, 64_000, compaction_min_trigger=STAND_IN_MIN_TRIGGER),
    # its limits with a small window, for experiments whose logs outgrow it (the whole log, `full`, then fails)
    "claude-emulated-6k": ModelLimits(6_144, 64_000, compaction_min_trigger=STAND_IN_MIN_TRIGGER),  # `full` fails refactor_16 there
    "claude-emulated-8k": ModelLimits(8_192, 64_000, compaction_min_trigger=STAND_IN_MIN_TRIGGER),
    "claude-emulated-32k": ModelLimits(32_768, 64_000, compaction_min_trigger=STAND_IN_MIN_TRIGGER),
    "claude-opus-4-7": ModelLimits(1_000_000, 128_000, prefill=False),
    "claude-opus-4-6": ModelLimits(1_000_000, 128_000, prefill=False),
    "claude-sonnet-4-6": ModelLimits(1_000_000, 64_000, prefill=False),
    "claude-opus-4-5": ModelLimits(200_000, 64_000),
    "claude-opus-4-5-20251101": ModelLimits(200_000, 64_000),
    "claude-sonnet-4-5": ModelLimits(200_000, 64_000),
    "claude-sonnet-4-5-20250929": ModelLimits(200_000, 64_000),
    "claude-haiku-4-5": ModelLimits(200_000, 64_000),
    "claude-haiku-4-5-20251001": ModelLimits(200_000, 64_000),
}


def model_table(extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, ModelLimits]:
    """KNOWN_MODELS with `extra`'s entries added (or replacing those of the same name); ValueError names a bad one."""
    table = dict(KNOWN_MODELS)
    for name, limits in (extra or {}).items():
        if not isinstance(limits, Mapping):
            raise ValueError(f"model.models.{name}={limits!r}; valid: a mapping of {_FIELDS}")
        unknown = set(limits) - {f.name for f in fields(ModelLimits)}
        if unknown:
            raise ValueError(f"model.models.{name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; valid: {_FIELDS}")
        try:
            table[str(name)] = ModelLimits(**limits)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model.models.{name}: {exc}") from None
    return table


_FIELDS = "context_window, max_output_tokens, prefill, compaction_min_trigger"
