"""The swappable parts: the name each is recorded and reported under, and building one from its `_target_`.

A part is recorded under its config option's name (`context=window` -> `window`) while it is that option's
own `_target_`. A part plugged in by `_target_` (`context._target_=mypkg.MyContext`) is recorded under the
`name` its class declares in its own body (not one inherited from the class it extends), or else its
import path: the run's header, the `sessions` table, `runs.choices` and every report grouping then tell
two custom parts apart, and from the option they replaced.
"""
from __future__ import annotations

import functools
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.run.config_check import ConfigError, locate
from experiments.paths import CONFIG_DIR
from experiments.run.runner import close_on_exit
from harnesses.base import ContextStrategy, Harness, Model
from sandboxes.base import SandboxProvider
from stores.base import SessionStore

PARTS = ("harness", "model", "sandbox", "store", "context")  # the `sessions` table has a column for each
RECORDED = (*PARTS, "tasks")  # shown in a run's header


def recorded_choices(cfg: DictConfig, choices: Mapping[str, Any], groups: Iterable[str] = RECORDED) -> dict[str, Any]:
    """Hydra's `choices` with each part of `groups` under the name it is recorded by (see the module's doc)."""
    return {**choices, **{group: part_name(group, cfg.get(group), choices.get(group)) for group in groups}}


def part_name(group: str, node: Any, choice: str | None) -> str:
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        return choice or ""
    shipped = shipped_targets(group)
    if choice is not None and shipped.get(choice, target) == target:  # the option's own part (or a user's own option)
        return choice
    declared = vars(part).get("name") if isinstance(part := locate(target, f"{group}._target_"), type) else None
    if isinstance(declared, str) and declared:
        return declared
    options = [option for option, its_target in shipped.items() if its_target == target]
    return options[0] if len(options) == 1 else target


@functools.cache
def shipped_targets(group: str) -> dict[str, str | None]:
    """Each option of `group` in configs/ and the `_target_` its file gives (through its defaults in the group)."""
    return {path.stem: _option_target(group, path.stem) for path in sorted((CONFIG_DIR / group).glob("*.yaml"))}


def _option_target(group: str, option: str) -> str | None:
    node = OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml")
    if "_target_" in node:
        return node["_target_"]
    parents = [entry for entry in node.get("defaults", []) if isinstance(entry, str) and entry != "_self_"]
    return _option_target(group, parents[0]) if parents else None


BUILD_ERRORS = (TypeError, ValueError, OSError, LookupError)  # what a constructor raises for options it cannot take


def build(cfg: DictConfig, group: str, **kwargs: Any) -> Any:
    """`instantiate(cfg[group], **kwargs)`; a constructor's complaint about its options is a ConfigError naming the part."""
    from sandboxes.base import SandboxError
    from stores.base import StoreError

    try:
        return instantiate(cfg[group], **kwargs)
    except InstantiationException as exc:
        cause, target = exc.__cause__, cfg[group].get("_target_")
        if isinstance(cause, ImportError):  # Hydra's "Error locating target": say which module, and why
            locate(target, f"{group}._target_")
        if not isinstance(cause, (*BUILD_ERRORS, StoreError, SandboxError)):
            raise
        raise ConfigError(f"{group} ({target}) cannot be built: {_said(cause)}") from None


def _said(exc: BaseException) -> str:
    """A constructor's own message; with the error's type where the message alone is not a sentence."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if isinstance(exc, (TypeError, OSError, LookupError)) or not text else text


@dataclass(frozen=True, slots=True)
class Parts:
    store: SessionStore
    sandboxes: SandboxProvider
    model: Model
    context: ContextStrategy
    harness: Harness
    credentials: Any = None  # a CredentialLab with credentials=proxy: it grants sessions their capabilities


def build_parts(
    cfg: DictConfig, stack: AsyncExitStack, harness_options: dict[str, Any] | None = None,
    wrap: Callable[[str, Any], Any] = lambda name, part: part,
) -> Parts:
    """Instantiate every swappable part from its `_target_`; `stack` closes them in reverse order.

    `wrap(name, part)` may wrap the store, sandbox provider and model before the harness gets them."""
    store = wrap("store", close_on_exit(stack, build(cfg, "store")))
    sandboxes = wrap("sandbox", close_on_exit(stack, build(cfg, "sandbox")))
    model = wrap("model", close_on_exit(stack, build(cfg, "model")))
    context = build(cfg, "context")
    lab = close_on_exit(stack, build(cfg, "credentials")) if cfg.get("credentials") else None
    options = {**(harness_options or {}), **({"credentials": lab.credentials} if lab is not None else {})}
    harness = build(cfg, "harness", store=store, model=model, sandboxes=sandboxes, context=context, **options)
    return Parts(store, sandboxes, model, context, harness, lab)


async def start_parts(parts: Parts) -> None:
    """Let the parts get ready (a model's client, an emulator, a pool's sandboxes) before sessions are timed."""
    for part in (parts.store, parts.sandboxes, parts.model, parts.credentials):
        if part is not None:
            await part.start()
