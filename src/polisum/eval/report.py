"""One Markdown + HTML report over saved runs: tables with confidence intervals, paired
differences, and matplotlib plots (PNG) — metric bars with CI whiskers, per-item score
histograms, and retrieval R@k curves.

Runs must share their metric settings (``check_comparable``); the settings are printed once,
with the fingerprint, so a reader can tell exactly what the numbers mean.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polisum.eval.runs import EvalRun, check_comparable
from polisum.eval.stats import MetricSummary, bootstrap_ci

__all__ = ["ReportFiles", "display_name", "write_report"]

_NAMES = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
    "bertscore_P": "BERTScore P",
    "bertscore_R": "BERTScore R",
    "bertscore_F1": "BERTScore F1",
    "retrieval_hit": "retrieval hit",
    "span_hit": "answer-span hit",
    "exact_match": "exact match",
    "token_f1": "token F1",
    "citation_valid": "citation validity",
    "cites_gold": "cites a gold passage",
}


def display_name(metric: str) -> str:
    return _NAMES.get(metric, metric)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    images: list[Path]


def _fmt(s: MetricSummary) -> str:
    if s.method == "degenerate":
        return f"{s.mean:.3f}"
    return f"{s.mean:.3f} [{s.low:.3f}, {s.high:.3f}]"


def _metric_order(runs: Sequence[EvalRun]) -> list[str]:
    seen: list[str] = []
    for run in runs:
        for name in run.metrics:
            if name not in seen:
                seen.append(name)
    return seen


def _unique_names(runs: Sequence[EvalRun]) -> list[str]:
    names: list[str] = []
    for run in runs:
        name = run.name
        while name in names:
            name += "'"
        names.append(name)
    return names


def write_report(
    runs: Sequence[EvalRun], out: Path, title: str = "polisum eval report"
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and PNG plots to ``out``; raise
    ``SettingsMismatchError`` when the runs cannot be compared."""
    check_comparable(runs)
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window (works on headless machines)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = _unique_names(runs)
    metrics = _metric_order(runs)
    images = [_plot_bars(runs, names, metrics, out / "metrics.png")]
    hist = _plot_histograms(runs, names, metrics, out / "histograms.png")
    if hist:
        images.append(hist)
    curve = _plot_recall_curve(runs, names, out / "recall_at_k.png")
    if curve:
        images.append(curve)

    md = [f"# {title}", ""]
    md += ["## Runs", "", "| run | kind | items | empty predictions | refused | created |"]
    md += ["|---|---|---:|---:|---:|---|"]
    for name, run in zip(names, runs, strict=True):
        info = run.info
        md.append(
            f"| {name} | {run.kind} | {info.get('n', len(run.items))} | "
            f"{info.get('empty_predictions', '–')} | {info.get('refused', '–')} | "
            f"{info.get('created', '–')} |"
        )
    warnings = [
        (n, w) for n, r in zip(names, runs, strict=True) for w in r.info.get("warnings", [])
    ]
    if warnings:
        md += ["", "**Warnings**", ""] + [f"- {n}: {w}" for n, w in warnings]
    md += ["", "## Scores", ""]
    md.append(
        "Mean over items with its 95 % bootstrap confidence interval "
        "(no interval when every item scored the same)."
    )
    md += ["", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(runs)]
    for metric in metrics:
        cells = [_fmt(r.metrics[metric]) if metric in r.metrics else "–" for r in runs]
        md.append(f"| {display_name(metric)} | " + " | ".join(cells) + " |")
    md += _paired_differences(runs, names, metrics)
    md += ["", "## Plots", ""]
    captions = {
        "metrics.png": "Mean scores with 95 % CI whiskers",
        "histograms.png": "Per-item score distributions",
        "recall_at_k.png": "Retrieval: share of questions with a gold passage in the top k",
    }
    for img in images:
        md += [f"![{captions[img.name]}]({img.name})", ""]
    md += ["## Settings", ""]
    md.append(f"Fingerprint `{runs[0].fingerprint}` (identical for every run in this report).")
    md += ["", "```json", json.dumps(runs[0].settings, ensure_ascii=False, indent=2), "```", ""]
    inputs = [(n, r.info.get("inputs")) for n, r in zip(names, runs, strict=True)]
    if any(i for _, i in inputs):
        md += ["## Inputs", ""]
        md += [f"- **{n}**: `{json.dumps(i, ensure_ascii=False)}`" for n, i in inputs if i]
        md.append("")
    markdown = "\n".join(md)
    md_path = out / "report.md"
    md_path.write_text(markdown, encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_to_html(markdown, title), encoding="utf-8")
    return ReportFiles(md_path, html_path, images)


def _paired_differences(runs: Sequence[EvalRun], names: list[str], metrics: list[str]) -> list[str]:
    """Run k − run 1 on the items both scored, with a paired bootstrap CI: the honest way to
    say whether a change helped (two overlapping CIs can still hide a consistent gain)."""
    if len(runs) < 2:
        return []
    base = {str(it["id"]): it for it in runs[0].items}
    lines = [
        "",
        f"### Differences against {names[0]} (paired by item id)",
        "",
        "| metric | " + " | ".join(f"{n} − {names[0]}" for n in names[1:]) + " |",
        "|---|" + "---:|" * (len(runs) - 1),
    ]
    any_row = any_star = False
    for metric in metrics:
        cells = []
        for run in runs[1:]:
            diffs = [
                it[metric] - base[str(it["id"])][metric]
                for it in run.items
                if str(it["id"]) in base
                and isinstance(it.get(metric), (int, float))
                and isinstance(base[str(it["id"])].get(metric), (int, float))
            ]
            if len(diffs) < 2:
                cells.append("–")
                continue
            s = bootstrap_ci(diffs, seed=0)
            mark = " *" if s.method != "degenerate" and (s.low > 0 or s.high < 0) else ""
            any_star = any_star or bool(mark)
            cells.append(f"{s.mean:+.3f} [{s.low:+.3f}, {s.high:+.3f}]{mark}")
        if any(c != "–" for c in cells):
            any_row = True
            lines.append(f"| {display_name(metric)} | " + " | ".join(cells) + " |")
    if not any_row:
        return []
    lines += ["", "`*`: the 95 % interval excludes 0." if any_star else "No interval excludes 0."]
    return lines


# -- plots ------------------------------------------------------------------------------------
def _plot_bars(runs: Sequence[EvalRun], names: list[str], metrics: list[str], path: Path) -> Path:
    import matplotlib.pyplot as plt

    x = np.arange(len(metrics))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(metrics) * max(1, len(runs) / 2)), 4))
    for i, (name, run) in enumerate(zip(names, runs, strict=True)):
        means, lows, highs = [], [], []
        for m in metrics:
            s = run.metrics.get(m)
            means.append(s.mean if s else np.nan)
            lows.append(s.mean - s.low if s else 0.0)
            highs.append(s.high - s.mean if s else 0.0)
        ax.bar(
            x + (i - (len(runs) - 1) / 2) * width,
            means,
            width,
            yerr=[lows, highs],
            capsize=3,
            label=name,
        )
    ax.set_xticks(x, [display_name(m) for m in metrics], rotation=30, ha="right")
    ax.set_ylabel("mean score (95 % CI)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_histograms(
    runs: Sequence[EvalRun], names: list[str], metrics: list[str], path: Path
) -> Path | None:
    import matplotlib.pyplot as plt

    per_item = [
        m
        for m in metrics
        if any(isinstance(it.get(m), (int, float)) for r in runs for it in r.items)
    ]
    if not per_item:
        return None
    cols = min(3, len(per_item))
    rows = (len(per_item) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, metric in zip(axes.flat, per_item, strict=False):
        for name, run in zip(names, runs, strict=True):
            values = [it[metric] for it in run.items if isinstance(it.get(metric), (int, float))]
            if values:
                ax.hist(np.clip(values, 0, 1), bins=bins, histtype="step", linewidth=1.5,
                        label=name)  # fmt: skip
        ax.set_title(display_name(metric), fontsize="medium")
        ax.set_xlim(0, 1)
    for ax in list(axes.flat)[len(per_item) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("items")
    axes.flat[0].legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def recall_curve(run: EvalRun) -> tuple[np.ndarray, np.ndarray] | None:
    """``(k, R@k)`` for k = 1..retrieval_k from the items' first gold ranks, or None."""
    ranked = [it for it in run.items if "gold_rank" in it]
    if not ranked:
        return None
    max_k = int(run.settings.get("answers", {}).get("retrieval_k") or 10)
    ranks = np.array([it["gold_rank"] or 10**9 for it in ranked])
    ks = np.arange(1, max_k + 1)
    return ks, np.array([(ranks <= k).mean() for k in ks])


def _plot_recall_curve(runs: Sequence[EvalRun], names: list[str], path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    curves = [(n, recall_curve(r)) for n, r in zip(names, runs, strict=True)]
    curves = [(n, c) for n, c in curves if c is not None]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, (ks, values) in curves:
        ax.plot(ks, values, marker="o", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("R@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _to_html(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
        "td{text-align:right}td:first-child{text-align:left}img{max-width:100%}"
        "pre{background:#f6f6f6;padding:.8rem;overflow:auto}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{body}</body></html>\n"
    )
