"""The TTFT part of `harnesslab report`: sweeps of the coupled against the decoupled harness (experiment=ttft).

Only for runs in the harness's own process, without faults: with worker processes, a turn's TTFT holds a
worker's start-up, and under faults its recoveries. Per cell, p50/p95/p99 of each user turn's first-token
time and its breakdown; per cell but the harness, the change decoupled vs coupled next to the change that
removing the coupled turns' provisioning gives (what not provisioning before the first call can save by
itself) and the seed's figure. No verdict: which of these a reader compares is theirs to choose. Two PNGs:
TTFT CDFs and the breakdown as stacked bars.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.report.figures import pyplot, save
from experiments.results.tables import read_table
from experiments.report.sweeps import varying

SEED_CHANGE = {"p50": -0.60, "p95": -0.90}  # decoupled vs coupled, as the seed reports it
QUANTILES = {"p50": 0.5, "p95": 0.95}
PARTS = ["queue_ms", "provision_ms", "context_ms", "model_ttft_ms", "other_ms"]
HARNESSES = {"coupled", "decoupled"}


def is_ttft_sweep(runs: pd.DataFrame) -> bool:
    """Runs of both harnesses, none of them with faults or worker processes."""
    return HARNESSES <= set(runs["harness"]) and (runs["faults"] == "none").all() and (runs["workers"] == 0).all()


def cell_keys(runs: pd.DataFrame) -> list[str]:
    """What a cell is: the sandbox, what else the runs vary, and the harness last."""
    return ["sandbox", *(d for d in varying(runs) if d not in ("sandbox", "harness")), "harness"]


def first_turns(files: list[Path], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per user turn's first model call, with its cell and TTFT breakdown."""
    calls = read_table(files, "model_calls")
    turns = calls[calls["turn_ttft_ms"].notna()].merge(runs, on="run_id")
    return turns.rename(columns={"ttft_ms": "model_ttft_ms"})


def cells(turns: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = turns.groupby(keys)
    table = grouped["turn_ttft_ms"].describe(percentiles=[0.5, 0.95, 0.99])[["count", "50%", "95%", "99%"]]
    table.columns = ["turns", "p50", "p95", "p99"]
    table["turns"] = table["turns"].astype(int)
    return table.join(grouped[PARTS].mean()).reset_index()


def comparison(turns: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cell but the harness and per quantile: coupled and decoupled TTFT, the measured change, the change
    without the coupled turns' provisioning, and the seed's change."""
    rows = []
    for cell, both in turns.groupby(keys[:-1]):
        coupled = both.loc[both["harness"] == "coupled", "turn_ttft_ms"]
        decoupled = both.loc[both["harness"] == "decoupled", "turn_ttft_ms"]
        if coupled.empty or decoupled.empty:
            continue
        unprovisioned = coupled - both.loc[coupled.index, "provision_ms"].fillna(0)
        for name, q in QUANTILES.items():
            rows.append({
                **dict(zip(keys[:-1], cell)), "quantile": name, "turns coupled/decoupled": f"{len(coupled)}/{len(decoupled)}",
                "coupled ms": coupled.quantile(q), "decoupled ms": decoupled.quantile(q),
                "measured": decoupled.quantile(q) / coupled.quantile(q) - 1,
                "without provisioning": unprovisioned.quantile(q) / coupled.quantile(q) - 1, "seed": SEED_CHANGE[name],
            })
    return pd.DataFrame(rows)


def part_changes(table: pd.DataFrame, keys: list[str]) -> list[str]:
    """Per cell but the harness: how the mean first-turn TTFT changed, part by part."""
    lines = []
    for cell, both in table.groupby(keys[:-1]):
        by = both.set_index("harness")
        if not HARNESSES <= set(by.index):
            continue
        change = by.loc["decoupled", PARTS] - by.loc["coupled", PARTS]
        parts = ", ".join(f"{part.removesuffix('_ms')} {ms:+.0f}" for part, ms in change.items() if round(ms))
        lines.append(f"  {' '.join(map(str, cell))}: mean {change.sum():+.0f} ms ({parts or 'no part changed'})")
    return lines


def plots(turns: pd.DataFrame, table: pd.DataFrame, keys: list[str], out: Path) -> list[Path]:
    plt = pyplot()
    panels = list(turns.groupby(keys[:-1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (panel, panel_turns) in zip(axes[0], panels):
        for harness, rows in panel_turns.groupby("harness"):
            values = rows["turn_ttft_ms"].sort_values().to_list()
            ax.step(values[:1] + values, [i / len(values) for i in range(len(values) + 1)], where="post", label=harness)
        ax.set(title=" ".join(f"{k}={v}" for k, v in zip(keys[:-1], panel)), xlabel="first-turn TTFT (ms)", xscale="log")
        ax.xaxis.set_major_locator(plt.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter("{x:g}")
        ax.xaxis.set_minor_formatter("")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of turns")
    axes[0][0].legend()
    cdf = save(fig, out / "ttft_cdf.png")

    labels = ["\n".join(map(str, row)) for row in table[keys].itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4))
    bottom = pd.Series(0.0, index=table.index)
    for part in PARTS:
        ax.bar(labels, table[part], bottom=bottom, label=part.removesuffix("_ms"))
        bottom += table[part]
    ax.set(ylabel="mean first-turn TTFT (ms)", title="where the first token's time goes")
    ax.legend(fontsize=8)
    return [cdf, save(fig, out / "ttft_breakdown.png")]


def ttft_section(files: list[Path], runs: pd.DataFrame, out: Path) -> list[str]:
    """Only for a sweep of coupled against decoupled, without faults or workers."""
    if not is_ttft_sweep(runs):
        return []
    keys = cell_keys(runs)
    turns = first_turns(files, runs)
    if turns.empty:
        return []
    table = cells(turns, keys)
    compared = comparison(turns, keys)
    lines = ["", f"TTFT of each user turn's first token, {len(turns)} turns", table.round(1).to_string(index=False), ""]
    if compared.empty:
        lines.append("  (no cell has both a coupled and a decoupled harness to compare)")
    else:
        shown = compared.copy()
        for column in ("measured", "without provisioning", "seed"):
            shown[column] = shown[column].map(lambda change: f"{change:+.0%}")
        lines += [
            "Decoupled vs coupled: the measured change; the change removing the coupled turns' provisioning gives (what",
            "not provisioning before the first call can save by itself); the seed's reported change",
            shown.round(1).to_string(index=False), "", "the mean first-turn TTFT's change, by part (ms):",
            *part_changes(table, keys),
        ]
    return lines + ["", *[f"wrote {p}" for p in plots(turns, table, keys, out)]]
