"""Every hook the code calls on a model, a context strategy or a harness is declared in harnesses/base.py; every
built-in part subclasses its contract, and a misspelt hook is refused when its class is defined."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from harnesses.base import ContextStrategy, Harness, Model, ModelResponse, hooks_of
from harnesses.contexts.full import FullContext
from harnesses.decoupled import DecoupledHarness
from harnesses.messages import events_to_messages
from sandboxes.local import LocalSandboxProvider
from stores.base import Event
from stores.memory import MemoryStore

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CONTRACTS = {"model": Model, "context": ContextStrategy, "harness": Harness}


def targets(group: str) -> list[str]:
    return [OmegaConf.load(path)["_target_"] for path in sorted((CONFIGS / group).glob("*.yaml"))]


@pytest.mark.parametrize("group, target", [(g, t) for g in CONTRACTS for t in targets(g)])
def test_every_built_in_part_subclasses_its_contract(group, target):
    assert issubclass(get_class(target), CONTRACTS[group])


@pytest.mark.parametrize("contract, misspelt, hook", [
    (ContextStrategy, "before_cal", "before_call"), (ContextStrategy, "run_tools", "run_tool"),
    (Model, "server_usages", "server_usage"), (Model, "respnd", "respond"),
    (Harness, "wakes", "wake"),
])
def test_a_misspelt_hook_is_refused_when_its_class_is_defined(contract, misspelt, hook):
    async def method(self, *args):
        return None

    with pytest.raises(TypeError, match=f"{misspelt} is not a hook of its contract.*did you mean {hook}\\?"):
        type("Mine", (contract,), {misspelt: method})


def test_a_subclass_of_a_built_in_part_is_checked_too():
    with pytest.raises(TypeError, match="did you mean before_call"):
        type("Mine", (FullContext,), {"beforecall": lambda self: None})


def test_methods_far_from_every_hook_and_data_are_a_parts_own():
    type("Mine", (FullContext,), {"view": lambda self: None, "note": lambda self: "", "builds": 0})
    assert {"name", "tools", "build", "before_call", "run_tool"} <= hooks_of(ContextStrategy)


def test_a_part_missing_a_required_hook_cannot_be_built():
    class NoBuild(ContextStrategy):
        pass

    with pytest.raises(TypeError, match="abstract method '?build"):
        NoBuild()


class OnlyBuild(ContextStrategy):
    """A strategy that defines nothing but `build`: every optional hook is the base's no-op."""

    async def build(self, events):
        return events_to_messages(events)


class OnlyRespond(Model):
    async def respond(self, request):
        return ModelResponse([{"type": "text", "text": "hello"}], "end_turn")


async def test_optional_hooks_default_to_no_ops(tmp_path):
    store, provider, model = MemoryStore(), LocalSandboxProvider(root=str(tmp_path)), OnlyRespond()
    sid = await store.create_session({"system": ""})
    await store.append(sid, [Event("user.message", {"text": "hi"})])
    outcome = await DecoupledHarness(store, model, provider, OnlyBuild()).wake(sid)
    assert (outcome.status, outcome.final_text) == ("completed", "hello")
    response = next(e for e in await store.events(sid) if e.type == "model.response")
    assert response.data["context"]["strategy"] == "OnlyBuild"  # the default name: the class's
    assert (model.name, await model.start(), await model.close(), model.server_usage()) == ("OnlyRespond", None, None, (None, None))
    await provider.close()
