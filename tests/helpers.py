"""Shared test doubles."""
from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable

from experiments.tasks import policy_book
from harnesses.models.scripted import ScriptedModel


class KillAfter(ScriptedModel):
    """The task policies, except that after the `after`-th answer `kill()` runs: the hands die mid-session."""

    def __init__(self, kill: Callable[[], Awaitable[None]], after: int = 2):
        super().__init__(policy_book())
        self.kill, self.after, self.calls = kill, after, 0

    async def respond(self, request):
        self.calls += 1
        if self.calls == self.after:
            await self.kill()
        return await super().respond(request)


def run_notebook(name: str, results: Path, plots: Path, monkeypatch) -> str:
    """Execute notebooks/<name> against `results` (its plots go to `plots`); returns its printed output."""
    import nbclient
    import nbformat

    monkeypatch.setenv("HARNESSLAB_RESULTS", str(results))
    monkeypatch.setenv("HARNESSLAB_PLOTS", str(plots))
    notebook = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(plots)}}).execute()
    return "".join(str(o.get("text", "")) for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
