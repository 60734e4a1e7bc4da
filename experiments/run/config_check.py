"""Every config value checked where it enters, on the composed config, before any part is built.

RULES says what is valid for each key the shipped configs have; a value outside it, or a `_target_` that
cannot be imported, is a ConfigError naming the key, the value and what is valid. The CLI prints a
ConfigError as one line (`harnesslab: <message>`), with no traceback. Keys of a user's own part that no
rule names are left to that part's constructor (whose TypeError or ValueError experiments.run.parts turns
into a ConfigError too).
"""
from __future__ import annotations

import copy
import importlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.faults.kinds import faults_from_config
from harnesses.models.providers import CLIENTS


class ConfigError(ValueError):
    """A mistake in the user's configuration, said in one line: the key, the value, and what is valid."""


@dataclass(frozen=True, slots=True)
class Rule:
    valid: str  # what is valid, as the error says it
    test: Callable[[Any], bool]
    found: Callable[[Any], str] | None = None  # what is wrong, where the value alone does not show it

    def error(self, key: str, value: Any) -> ConfigError:
        found = f" ({self.found(value)})" if self.found is not None else ""
        return ConfigError(f"{key}={value!r}{found}: expected {self.valid}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(low: int | None = None) -> Rule:
    valid = "a whole number" + (f" >= {low}" if low is not None else "")
    return Rule(valid, lambda v: isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low))


def number(low: float = 0.0, above: bool = False, high: float | None = None) -> Rule:
    """A finite number >= low (> low with `above`), and <= high if given."""
    valid = f"a number {'>' if above else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
    return Rule(valid, lambda v: _is_number(v) and (v > low if above else v >= low) and (high is None or v <= high))


def one_of(*names: str) -> Rule:
    return Rule(f"one of {', '.join(names)}", lambda v: v in names)


def optional(rule: Rule) -> Rule:
    return Rule(f"{rule.valid}, or null", lambda v: v is None or rule.test(v), rule.found)


def matching(pattern: str, valid: str) -> Rule:
    return Rule(valid, lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None)


def _no_file(value: Any) -> str:
    return f"no file at {Path(value).absolute()}" if isinstance(value, str) and value else "not a path"


def _unset(value: Any) -> str:
    return f"${value} is not set: export it, or use model=emulator" if isinstance(value, str) and value else "no name"


SECONDS = number(above=True)  # a duration that must pass: 0 would make every wait time out at once
BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and v != "")
SHARE = number(0.0, high=1.0)
SIZE = matching(r"[0-9]+[bkmgBKMG]?", "a size like 512m (a whole number, then b, k, m or g)")
FILE = Rule("an existing file (a relative path is taken from the folder harnesslab runs in)",
            lambda v: isinstance(v, str) and Path(v).is_file(), _no_file)
ENV_WITH_KEY = Rule("the name of an environment variable that holds the API key",
                    lambda v: isinstance(v, str) and bool(os.environ.get(v)), _unset)
NAMES = Rule("a list of names", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v))

# A pool's provider options (sandbox.inner.*) follow the sandbox.* rules.
RULES: dict[str, Rule] = {
    "run.concurrency": whole(1), "run.arrivals_per_s": optional(number(above=True)), "run.workers": whole(0),
    "run.seed": whole(), "run.timeout_s": SECONDS, "run.results": TEXT,

    "sandbox.timeout_s": SECONDS, "sandbox.max_timeout_s": SECONDS, "sandbox.output_limit": whole(1),
    "sandbox.keep": BOOLEAN, "sandbox.root": optional(TEXT), "sandbox.journal": optional(TEXT),
    "sandbox.user": optional(TEXT), "sandbox.size": whole(1), "sandbox.cpus": number(above=True),
    "sandbox.pids_limit": whole(1), "sandbox.memory": SIZE, "sandbox.workspace_size": SIZE,
    "sandbox.image": optional(TEXT), "sandbox.run_label": optional(TEXT),

    "model.model": TEXT, "model.max_attempts": whole(1), "model.backoff_base_s": number(),
    "model.backoff_max_s": number(), "model.timeout_s": SECONDS, "model.http": one_of("httpx", "aiohttp"),
    "model.client": one_of(*CLIENTS),
    "model.serve": one_of("in_process", "process"), "model.cache_min_tokens": whole(0),
    "model.api_key_env": ENV_WITH_KEY, "model.base_url": optional(matching(r"https?://.+", "an http:// or https:// URL")),
    "model.latency_file": optional(FILE), "model.ttft_ms": number(), "model.ms_per_output_token": number(),
    "model.after": whole(0), "model.session": optional(TEXT), "model.strict": BOOLEAN,
    "model.latency.base_ttft_ms": number(), "model.latency.prefill_ms_per_1k_tokens": number(),
    "model.latency.cached_prefill_ms_per_1k_tokens": number(), "model.latency.output_tokens_per_s": number(above=True),
    "model.latency.jitter_sigma": number(), "model.latency.seed": whole(),
    "model.faults.rate_limit": SHARE, "model.faults.overloaded": SHARE, "model.faults.server_error": SHARE,
    "model.faults.disconnect": SHARE, "model.faults.retry_after_s": number(), "model.faults.seed": whole(),

    "store.path": TEXT, "store.dsn": optional(TEXT), "store.group_commit": BOOLEAN, "store.max_batch": whole(1),
    "store.pool_size": whole(1), "store.commits_in_flight": whole(1),
    "store.schema": matching(r"[a-z_][a-z0-9_]{0,62}", "a lowercase SQL identifier like harnesslab"),

    "harness.max_turns": whole(1), "harness.max_tokens": whole(1),
    "harness.interrupted": one_of("idempotent", "error", "rerun"), "harness.hands": optional(NAMES),

    "context.turns": whole(1), "context.keep": whole(0), "context.batch": whole(1),
    "context.threshold_tokens": whole(1), "context.keep_turns": whole(0), "context.max_tokens": whole(1),
    "context.max_chars": whole(1),

    "tasks.name": TEXT, "tasks.only": optional(NAMES), "tasks.repeat": whole(1), "tasks.seed": whole(),
    "tasks.repo_files": whole(0), "tasks.repo_file_bytes": whole(1), "tasks.setup_command": optional(TEXT),
    "tasks.question_share": SHARE,

    "credentials.test_services": BOOLEAN, "credentials.secrets_file": optional(FILE), "credentials.audit": optional(TEXT),
}
IMPORT_PATHS = ("model.policies",)  # keys that name a function by its import path, as `_target_` does

GROUPS = ("run", "harness", "model", "sandbox", "store", "context", "tasks", "credentials", "faults")


def check_config(cfg: DictConfig, groups: tuple[str, ...] = GROUPS) -> None:
    """Raise a ConfigError for the first value of `groups` (the ones a command builds) that is not valid."""
    for group in groups:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        try:
            values = OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as exc:  # an interpolation that does not resolve
            raise ConfigError(f"{group}: {exc}") from None
        for key, value in _leaves(group, values):
            if key.endswith("._target_") or (key in IMPORT_PATHS and isinstance(value, str)):
                locate(value, key)
                continue
            rule = RULES.get(key.replace(".inner.", "."))
            if rule is not None and not rule.test(value):
                raise rule.error(key, value)
    if "faults" in groups and cfg.get("faults"):
        _check_faults(cfg)
    if {"model", "harness"} <= set(groups):
        _check_thinking_budget(cfg)


def _check_thinking_budget(cfg: DictConfig) -> None:
    """Thinking's budget counts towards max_tokens: below the harness's, or every turn's request is refused."""
    thinking = (cfg.get("model") or {}).get("thinking") or {}
    budget, max_tokens = thinking.get("budget_tokens"), (cfg.get("harness") or {}).get("max_tokens")
    if thinking.get("type") == "enabled" and _is_number(budget) and _is_number(max_tokens) and budget >= max_tokens:
        raise ConfigError(f"model.thinking.budget_tokens={budget} is not below harness.max_tokens={max_tokens}; valid: a "
                          f"budget below harness.max_tokens (thinking counts towards it), e.g. harness.max_tokens={budget + 4096}")


def _leaves(prefix: str, node: Any) -> Iterator[tuple[str, Any]]:
    if not isinstance(node, Mapping):
        yield prefix, node
        return
    for key, value in node.items():
        yield from _leaves(f"{prefix}.{key}", value)


def _check_faults(cfg: DictConfig) -> None:
    """The faults' own checks (experiments/faults/kinds.py), on a copy of the config the workers would get."""
    workers_cfg = copy.deepcopy(OmegaConf.to_container(cfg, resolve=True))
    try:
        for fault in faults_from_config(cfg.faults):
            fault.configure_workers(workers_cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def locate(target: Any, key: str = "_target_") -> Any:
    """The object an import path names; a ConfigError names the module that would not import, and why."""
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"{key}={target!r}: expected an import path like package.module.Class")
    names = target.split(".")
    first_error: Exception | None = None
    for cut in range(len(names) - 1, 0, -1):
        module = ".".join(names[:cut])
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
                raise ConfigError(f"{key}={target!r}: importing module {module!r} failed: {exc}") from None
            first_error = first_error or exc  # no module of that name: perhaps a shorter prefix is one
            continue
        except Exception as exc:  # the module exists but fails as it is imported
            raise ConfigError(f"{key}={target!r}: importing module {module!r} failed: {type(exc).__name__}: {exc}") from None
        return _attribute(found, module, names[cut:], key, target)
    raise ConfigError(f"{key}={target!r}: cannot import module {'.'.join(names[:-1])!r} ({first_error}); "
                      "is its package installed, or on PYTHONPATH?")


def _attribute(found: Any, module: str, names: list[str], key: str, target: str) -> Any:
    for name in names:
        if not hasattr(found, name):
            raise ConfigError(f"{key}={target!r}: module {module!r} has no {name!r}")
        found = getattr(found, name)
    return found
