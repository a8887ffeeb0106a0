"""What makes a table untrustworthy, said above it: one line per check, naming the cells.

Checks (per data set, on the runs ``report`` loaded): cells with fewer than three seeds (named for the
main methods, counted for tagged variants, which are mostly one-seed probes); cells whose runs differ in
protocol (crop, schedule, evaluation, backbone, weights, split files, generated data, resolved
numerics), named with what differs, which are reported as separate rows and never averaged; a
supervised row, main or tagged, whose mean does not rise with the labeled count; runs whose best
evaluation on val beats their last by more than 1 mIoU (they peaked early; val, since val selects); runs
whose last evaluation is not at their final step.
"""

from __future__ import annotations

import json

import pandas as pd

from benchmark.records import is_main

MIN_SEEDS = 3
PEAK_GAP = 1.0
"""mIoU points of best over last above which a run is said to have peaked early."""


def _cell(row: object) -> str:
    return f"{row.method} on {row.split}" + ("" if row.source == "reference" else f" ({row.source})")


def _listing(cells: list[str]) -> str:
    unique = list(dict.fromkeys(cells))
    return ", ".join(unique[:12]) + (f" and {len(unique) - 12} more" if len(unique) > 12 else "")


def _mixed_protocols(runs: pd.DataFrame) -> list[str]:
    """Each cell whose runs differ in protocol, with what differs (e.g. 'fixmatch on demo_1_16 (numerics)')."""
    if runs.empty or "protocol_fields" not in runs:
        return []
    found = []
    mixed = runs[runs["protocols"] > 1]
    mixed = mixed.assign(method=[label.partition(" [")[0] for label in mixed["method"]])
    for _, group in mixed.groupby(["split", "source", "method"], sort=False):
        fields = list(group["protocol_fields"])
        differ = [key for key in fields[0] if len({json.dumps(f.get(key), sort_keys=True) for f in fields}) > 1]
        found.append(_cell(next(group.itertuples())) + f" ({', '.join(differ)})")
    return found


def protocol_checks(runs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, list[str]]:
    """Per data set, the lines that say what in its table cannot be trusted (none: an empty list)."""
    found: dict[str, list[str]] = {}
    for dataset, block in summary.groupby("dataset", sort=False):
        lines = []
        few = [r for r in block.itertuples() if r.seeds < MIN_SEEDS]
        few_main = [f"{_cell(r)} (n={r.seeds}" + (f", {r.diverged} diverged" if getattr(r, "diverged", 0) else "")
                    + ")" for r in few if is_main(r.method)]
        few_variants = {_cell(r) for r in few if not is_main(r.method)}
        if few_main or few_variants:
            variants = {_cell(r) for r in block.itertuples() if not is_main(r.method)}
            lines.append(f"fewer than {MIN_SEEDS} seeds, no spread to trust: "
                         + "; ".join(([_listing(few_main)] if few_main else [])
                                     + ([f"{len(few_variants)} of the {len(variants)} tagged-variant cells"]
                                        if few_variants else [])))
        mine = runs[runs["dataset"] == dataset]
        mixed = _mixed_protocols(mine)
        if mixed:
            lines.append("runs of one cell differ in protocol and are shown as separate rows, never averaged: "
                         + _listing(mixed))
        labels = block["method"].str.partition(" [")[0]
        supervised = block[[label.partition("+")[0] == "supervised" for label in labels]]
        for (label, source), rows in supervised.groupby([labels[supervised.index], "source"], sort=False):
            by_count = rows.groupby("labeled")["last_mean"].mean().sort_index()  # protocols of one count pooled
            means = list(by_count)
            if any(later <= earlier for earlier, later in zip(means, means[1:])):
                order = ", ".join(f"{r.split} {r.last_mean:.2f}" for r in rows.sort_values("labeled").itertuples())
                lines.append(f"{label} ({source}) is not ordered by labeled count: {order}")
        peaked = [_cell(r) + f" seed {r.seed} ({r.val_best - r.val_last:.1f})" for r in mine.itertuples()
                  if r.val_best - r.val_last > PEAK_GAP]
        if peaked:
            lines.append(f"best minus last on val above {PEAK_GAP:g} mIoU (the run peaked early): {_listing(peaked)}")
        unfinished = [_cell(r) + f" seed {r.seed} (last at {r.last_iteration:g} of {r.iterations:g})"
                      for r in mine.itertuples()
                      if pd.notna(r.last_iteration) and pd.notna(r.iterations) and r.last_iteration != r.iterations]
        if unfinished:
            lines.append(f"last evaluation not at the final step: {_listing(unfinished)}")
        found[dataset] = lines
    return found
