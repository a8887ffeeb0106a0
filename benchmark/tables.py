"""The report's tables: terminal (rich), Markdown, LaTeX (booktabs), the per-class, per-group and per-seed
tables.

A cell is the last network's mIoU, mean ± std over seeds (n), its 95 % bootstrap interval over the
evaluation images where the records carry per-image counts, and the best network's mean below. Every
table names its evaluation set: test where the data set has a test list (the best network is the best on
val; the val figures follow in the cell), val elsewhere. Per split, the
best main method is marked (bold in Markdown and LaTeX) and so is every main method whose paired
difference to it has an interval containing 0 ("tied": these val images cannot tell them apart).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmark.errors import UserError
from benchmark.records import is_main

MARKS = {"best": "▲ top", "tied": "≈ top"}


def _fmt(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def grid(summary: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, list[tuple[str, str, list[Any]]]]]:
    """Per data set: its splits (ordered by labeled fraction) and, per method and source, the summary row
    of each split (None where the method has no run on it). Main methods come before tagged variants."""
    for dataset, block in summary.groupby("dataset", sort=False):
        splits = block.drop_duplicates("split").sort_values("fraction")
        rows = []
        for (method, source), runs in block.groupby(["method", "source"], sort=True):
            by_split = {r.split: r for r in runs.itertuples()}
            rows.append((method, source, [by_split.get(s) for s in splits["split"]]))
        rows.sort(key=lambda row: not is_main(row[0]))
        yield dataset, splits, rows


def headline_and_variants(splits: pd.DataFrame, rows: list[tuple[str, str, list[Any]]]
                          ) -> Iterator[tuple[str, pd.DataFrame, list[tuple[str, str, list[Any]]]]]:
    """The headline table (main methods) and the variants table (tagged configurations) of one data set,
    each with only the splits it has runs on: (title, splits, rows); an empty table is left out."""
    for title, wanted in (("", True), ("variants (tagged configurations)", False)):
        chosen = [row for row in rows if is_main(row[0]) == wanted]
        keep = [i for i in range(len(splits)) if any(cells[i] is not None for _, _, cells in chosen)]
        if chosen:
            yield title, splits.iloc[keep], [(m, src, [cells[i] for i in keep]) for m, src, cells in chosen]


def _interval(row: Any) -> str:
    low, high = getattr(row, "ci_low", math.nan), getattr(row, "ci_high", math.nan)
    return "" if low is None or math.isnan(low) else f"95% CI [{low:.2f}, {high:.2f}]"


def evaluation_of(rows: list[tuple[str, str, list[Any]]]) -> str:
    """The evaluation set(s) of one table's cells, in words, for the statement beside it."""
    kinds = set()
    for _, _, cells in rows:
        for cell in cells:
            if cell is not None:
                images = getattr(cell, "eval_images", None)
                kinds.add((getattr(cell, "evaluated_on", "val"), None if pd.isna(images) else int(images)))
    texts = [(f"test{f' ({images} images)' if images else ''}: the last and the best-on-val networks, val beside"
              if kind == "test" else f"val{f' ({images} images)' if images else ''}")
             for kind, images in sorted(kinds, key=lambda k: (k[0] != "test", k[1] or 0))]
    return "; ".join(texts) or "val"


def mixes_evaluation_sets(rows: list[tuple[str, str, list[Any]]]) -> bool:
    """Whether one table holds cells on test and cells on val, so that each val cell must say so."""
    return len({getattr(cell, "evaluated_on", "val") for _, _, cells in rows for cell in cells
                if cell is not None}) > 1


def diverged_text(row: Any) -> str:
    """'2 of 3 seeds diverged (steps 3240, 3359), not in the mean', 'diverged: 1 of 1 seed (step 2100)' for a
    cell without a finished seed; '' for a cell none of whose seeds diverged."""
    count = int(getattr(row, "diverged", 0) or 0)
    if not count:
        return ""
    steps = f"step{'s' if count > 1 else ''} {row.diverged_at}"
    if not row.seeds:
        return f"diverged: {count} of {count} seed{'s' if count > 1 else ''} ({steps})"
    return f"{count} of {count + row.seeds} seeds diverged ({steps}), not in the mean"


def _ours(row: Any) -> str:
    """The cell's headline: mean ± std, or that every seed diverged."""
    return _fmt(row.last_mean, row.last_std) if row.seeds else "diverged"


def cell_text(row: Any, newline: str, published: str, mixed: bool = False) -> str:
    """One cell: last mean ± std (n), interval, mark, best, the val means (a cell on test), the seeds that
    diverged, published number; in a table that also holds test cells (``mixed``) a val cell says it is
    on val."""
    if row is None:
        return ""
    if not row.seeds:
        return newline.join([diverged_text(row)] + ([published.format(row.published)]
                                                    if getattr(row, "published", "") else []))
    lines = [f"{_fmt(row.last_mean, row.last_std)} (n={row.seeds})"]
    if _interval(row):
        lines.append(_interval(row))
    if getattr(row, "mark", ""):
        lines.append(MARKS[row.mark])
    test = getattr(row, "evaluated_on", "val") == "test"
    lines.append(f"{'best-on-val' if test else 'best'} {_fmt(row.best_mean, row.best_std)}")
    if test:
        lines.append(f"val {row.val_last_mean:.2f}, best {row.val_best_mean:.2f}")
    elif mixed:
        lines.append("on val: no test evaluation")
    diverged = diverged_text(row)
    if diverged:
        lines.append(diverged)
    if getattr(row, "published", ""):
        lines.append(published.format(row.published))
    return newline.join(lines)


def markdown(summary: pd.DataFrame, checks: dict[str, list[str]] | None = None) -> str:
    """One Markdown table per data set (rows methods, columns splits), its protocol checks above it."""
    parts = ["# Results\n", "mIoU (%) on each data set's evaluation set, named above its table (test where the "
             "data set has a test list, with val beside; else val): last network mean ± std over seeds (n seeds), "
             "its 95 % bootstrap interval over the evaluation images (where the records carry per-image counts), "
             "best network below (on test: the best on val). ▲ top marks the main method of a split with the highest mean, ≈ top a main method whose "
             "paired difference to it has an interval containing 0. Published numbers are the papers' own, with their backbone. Runs: "
             "'reference' = the suite's committed records (results/reference/), 'local' = your own runs.\n"]
    for dataset, all_splits, all_rows in grid(summary):
        parts.append(f"\n## {dataset}\n\n")
        for line in (checks or {}).get(dataset, []):
            parts.append(f"- ⚠ {line}\n")
        for title, splits, rows in headline_and_variants(all_splits, all_rows):
            header = [f"{s.split} ({s.labeled} labeled)" for s in splits.itertuples()]
            parts.append(f"\n### {dataset}: {title}\n" if title else "")
            parts.append(f"\nEvaluated on {evaluation_of(rows)}.\n")
            mixed = mixes_evaluation_sets(rows)
            parts.append("\n| method | runs | " + " | ".join(header) + " |\n|---|---|" + "---|" * len(header) + "\n")
            for method, source, cells in rows:
                parts.append(f"| {method} | {source} | "
                             + " | ".join(cell_text(c, "<br>", "published: {}", mixed) for c in cells) + " |\n")
    return "".join(parts)


def terminal(summary: pd.DataFrame, console: Console, checks: dict[str, list[str]] | None = None) -> None:
    """Rich tables, one per data set, each under its protocol checks."""
    for dataset, all_splits, all_rows in grid(summary):
        for line in (checks or {}).get(dataset, []):
            console.print(f"[yellow]check {dataset}:[/] {line}", highlight=False, soft_wrap=True)
        for title, splits, rows in headline_and_variants(all_splits, all_rows):
            table = Table(title=f"{dataset}{' ' + title if title else ''}: mIoU % on "
                          f"{evaluation_of(rows)} (last: mean ± std over seeds, "
                          "95 % interval over the evaluation images; best)", show_lines=True)
            table.add_column("method", style="bold")
            table.add_column("runs")
            for s in splits.itertuples():
                table.add_column(f"{s.split}\n{s.labeled} labeled ({100 * s.fraction:.3g} %)", justify="right")
            mixed = mixes_evaluation_sets(rows)
            for method, source, cells in rows:
                table.add_row(method, source, *(cell_text(c, "\n", "[dim]published {}[/]", mixed) for c in cells))
            console.print(table)


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def latex(summary: pd.DataFrame) -> str:
    """The headline table (main methods, one source per row) as LaTeX tabulars, one per data set: mean ±
    std of the last network on the data set's evaluation set (named in a comment) per split, the best of each split in bold, and the published numbers in a
    second column group ('--' where no paper reports that split). Needs booktabs."""
    parts = ["% python -m benchmark report --latex; needs \\usepackage{booktabs}; $^\\dagger$: some seeds of the "
             "cell diverged and are not in its mean (summary.md names them)\n"]
    for dataset, all_splits, all_rows in grid(summary):
        headline = [table for table in headline_and_variants(all_splits, all_rows) if not table[0]]
        if not headline:
            continue
        _, splits, rows = headline[0]
        names = [_latex_escape(s) for s in splits["split"]]
        n = len(names)
        parts.append(f"\n% {dataset}, evaluated on {evaluation_of(rows)}\n\\begin{{tabular}}{{ll{'c' * n}{'c' * n}}}\n\\toprule\n")
        parts.append(f"& & \\multicolumn{{{n}}}{{c}}{{ours (mIoU \\%)}} & \\multicolumn{{{n}}}{{c}}{{published}} \\\\\n")
        parts.append(f"\\cmidrule(lr){{3-{2 + n}}}\\cmidrule(lr){{{3 + n}-{2 + 2 * n}}}\n")
        labels = [f"{name} ({s.labeled})" for name, s in zip(names, splits.itertuples())]
        parts.append("method & runs & " + " & ".join(labels + labels) + " \\\\\n\\midrule\n")
        for method, source, cells in rows:
            ours = []
            for c in cells:
                if c is None:
                    ours.append("--")
                    continue
                text = _ours(c).replace("±", "$\\pm$") + ("$^\\dagger$" if getattr(c, "diverged", 0) else "")
                ours.append(f"\\textbf{{{text}}}" if getattr(c, "mark", "") == "best" else text)
            published = [_latex_escape(getattr(c, "published", "") or "--") if c is not None else "--" for c in cells]
            parts.append(f"{_latex_escape(method)} & {source} & " + " & ".join(ours + published) + " \\\\\n")
        parts.append("\\bottomrule\n\\end{tabular}\n")
    return "".join(parts)


def _wide(table: pd.DataFrame, column: str) -> Iterator[tuple[str, str, list[str], list[tuple[str, str, dict]]]]:
    """Per data set and split of a long table: its ``column`` values in order and, per method and source,
    the rows by that value (the shape of the per-class and per-group tables)."""
    for (dataset, split), block in table.groupby(["dataset", "split"], sort=False):
        names = list(dict.fromkeys(block[column]))
        rows = [(method, source, {r[column]: r for _, r in part.iterrows()})
                for (method, source), part in block.groupby(["method", "source"], sort=True)]
        yield dataset, split, names, rows


def _wide_markdown(table: pd.DataFrame, column: str, cell: Callable[[Any], str], head: list[str]) -> str:
    """``head`` (title and explanation) and, per data set and split, rows methods and columns ``column``."""
    parts = list(head)
    for dataset, split, names, rows in _wide(table, column):
        parts.append(f"\n## {dataset} {split}\n\n| method | runs | " + " | ".join(names) + " |\n|---|---|"
                     + "---|" * len(names) + "\n")
        for method, source, by_name in rows:
            parts.append(f"| {method} | {source} | " + " | ".join(cell(by_name.get(n)) for n in names) + " |\n")
    return "".join(parts)


def _wide_terminal(table: pd.DataFrame, column: str, cell: Callable[[Any], str], title: str,
                   console: Console) -> None:
    """Per data set and split, a terminal table with rows methods and columns ``column``."""
    for dataset, split, names, rows in _wide(table, column):
        out = Table(title=f"{dataset} {split}: {title}")
        out.add_column("method", style="bold")
        out.add_column("runs")
        for name in names:
            out.add_column(str(name), justify="right")
        for method, source, by_name in rows:
            out.add_row(method, source, *(cell(by_name.get(n)) for n in names))
        console.print(out)


def per_class_markdown(table: pd.DataFrame) -> str:
    """Per data set and split: rows methods, columns classes; IoU (%) with the difference to supervised."""
    return _wide_markdown(table, "class", _class_cell, [
        "# Per-class IoU\n", "IoU (%) of the last network on the evaluation set (test where the data set has "
        "a test list, else val), mean over seeds; in brackets the difference to "
        "supervised on the same split (which classes a method gains or loses).\n"])


def per_group_markdown(table: pd.DataFrame, pattern: str) -> str:
    """Per data set and split: rows methods, columns groups of evaluation images; mIoU (%) on each group."""
    return _wide_markdown(table, "group", _group_cell, [
        "# mIoU per group of evaluation images\n", f"Groups: the part of each evaluation image's file name "
        f"`{pattern}` matches. mIoU (%) of the last network on the group's images (test where the data set has "
        "a test list, else val), mean ± std over seeds (n seeds), the group's image count, and in square brackets "
        "the difference to supervised on the same split.\n"])


def per_seed_markdown(table: pd.DataFrame) -> str:
    """Per data set: rows methods (main methods first), columns splits; each cell the last mIoU of every
    seed, so that a reader can check a mean and a spread against the runs behind it."""
    parts = ["# Per seed\n", "mIoU (%) of the last network of every finished run on its evaluation set (test "
             "where the data set has a test list, else val; both in per_seed.csv), as `seed: mIoU`, and the step "
             "at which every diverged run stopped; the means, "
             "spreads and best evaluations are in summary.md, the training hours in per_seed.csv.\n"]
    for dataset, block in table.groupby("dataset", sort=False):
        splits = list(dict.fromkeys(block["split"]))
        parts.append(f"\n## {dataset}\n\n| method | runs | " + " | ".join(splits) + " |\n|---|---|"
                     + "---|" * len(splits) + "\n")
        cells = block.groupby(["method", "source"], sort=False)
        for method, source in sorted(cells.groups, key=lambda key: (not is_main(key[0]), key)):
            rows = cells.get_group((method, source))
            texts = [" · ".join(f"{r.seed}: diverged at {int(r.diverged_at)}" if _stopped(r)
                                else f"{r.seed}: {r.last:.2f}" for r in rows[rows["split"] == split].itertuples())
                     for split in splits]
            parts.append(f"| {method} | {source} | " + " | ".join(texts) + " |\n")
    return "".join(parts)


def _stopped(row: Any) -> bool:
    at = getattr(row, "diverged_at", None)
    return at is not None and not pd.isna(at)


def _class_cell(row: Any) -> str:
    if row is None or math.isnan(row["iou"]):
        return ""
    delta = row["vs_supervised"]
    return f"{row['iou']:.1f}" + ("" if math.isnan(delta) or row["method"] == "supervised" else f" ({delta:+.1f})")


def _group_cell(row: Any) -> str:
    if row is None:
        return ""
    delta = row["vs_supervised"]
    return (f"{_fmt(row['mean'], row['std'])} ({row['seeds']}), {row['images']} im"
            + ("" if math.isnan(delta) or row["method"] == "supervised" else f" [{delta:+.1f}]"))


def per_class_terminal(table: pd.DataFrame, console: Console) -> None:
    """The per-class tables of the main methods in the terminal (variants: per_class.md and .csv)."""
    _wide_terminal(table[[is_main(m) for m in table["method"]]], "class", _class_cell,
                   "per-class IoU % (difference to supervised)", console)


def per_group_terminal(table: pd.DataFrame, console: Console) -> None:
    """The per-group tables in the terminal, every method."""
    _wide_terminal(table, "group", _group_cell, "mIoU % per group of evaluation images (difference to supervised)",
                   console)


README_BEGIN = "<!-- report:begin -->"
README_END = "<!-- report:end -->"


def variants_on_test(splits: pd.DataFrame, rows: list[tuple[str, str, list[Any]]]
                     ) -> tuple[pd.DataFrame, list[tuple[str, str, list[Any]]]]:
    """The tagged variants' cells evaluated on test, with only the rows and splits that have one: the
    configurations tried on a data set's test list, shown in the README apart from the headline."""
    chosen = [(method, source, [c if c is not None and getattr(c, "evaluated_on", "val") == "test" else None
                                for c in cells]) for method, source, cells in rows if not is_main(method)]
    chosen = [row for row in chosen if any(c is not None for c in row[2])]
    keep = [i for i in range(len(splits)) if any(cells[i] is not None for _, _, cells in chosen)]
    return splits.iloc[keep], [(m, src, [cells[i] for i in keep]) for m, src, cells in chosen]


def _readme_table(splits: pd.DataFrame, rows: list[tuple[str, str, list[Any]]]) -> str:
    """One README table: a row per method, a column per split."""
    mixed = mixes_evaluation_sets(rows)
    header = [f"{s.split} ({s.labeled} labeled)" for s in splits.itertuples()]
    lines = ["\n| method | " + " | ".join(header) + " |\n|---|" + "---|" * len(header) + "\n"]
    for method, _, cells in rows:
        lines.append(f"| {method} | " + " | ".join(cell_text(c, "<br>", "published: {}", mixed) for c in cells)
                     + " |\n")
    return "".join(lines)


def readme_block(summary: pd.DataFrame, runs: pd.DataFrame, checks: dict[str, list[str]], plot: str,
                 test_plot: str | None = None) -> str:
    """The README's results block: per data set the protocol of its headline runs with their training
    time, the protocol checks, the headline table (main methods) and, for a data set with a test list,
    the tagged variants evaluated on test; then the plot at ``plot`` and that of the variants on test at
    ``test_plot``."""
    parts = [f"{README_BEGIN}\n<!-- written by `python -m benchmark report --runs reference --readme` from the committed "
             "records; edits inside this block are overwritten -->\n"]
    for dataset, all_splits, all_rows in grid(summary):
        headline = [table for table in headline_and_variants(all_splits, all_rows) if not table[0]]
        if not headline:
            continue
        _, splits, rows = headline[0]
        main = runs[(runs["dataset"] == dataset) & runs["method"].map(is_main)]
        parts.append(f"\n#### {dataset}\n\nEvaluated on {evaluation_of(rows)}.\n\n")
        for setup, group in main.groupby("setup"):
            seeds = ", ".join(str(seed) for seed in sorted(group["seed"].unique()))
            hours = group["seconds"].fillna(0).sum() / 3600
            parts.append(f"- {len(group)} runs (seeds {seeds}; {hours:.1f} h of training): {setup}\n")
        for line in checks.get(dataset, []):
            parts.append(f"- ⚠ {line}\n")
        parts.append(_readme_table(splits, rows))
        tested_splits, tested = variants_on_test(all_splits, all_rows)
        if tested:
            parts.append(f"\n#### {dataset}: tagged variants on test\n\nEvaluated on {evaluation_of(tested)}.\n")
            parts.append(_readme_table(tested_splits, tested))
    parts.append(f"\n![mIoU against labeled images, main methods]({plot})\n")
    if test_plot:
        parts.append(f"\n![mIoU on test against labeled images, tagged variants]({test_plot})\n")
    parts.append(README_END)
    return "".join(parts)


def replace_readme_block(text: str, block: str, where: str) -> str:
    """``text`` with its report block replaced by ``block``."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise UserError(f"{where} has no '{README_BEGIN}' ... '{README_END}' block for the report to write")
    return text[:start] + block + text[end + len(README_END):]
