"""`polisum eval text`, `polisum eval answers`, `polisum eval report`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from polisum.commands._common import IndexOpt, JsonOpt, err, fail, open_index, out, print_json, safe

eval_app = typer.Typer()

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Save the run here (run.json + items.jsonl) for `eval report`."),
]
LangOpt = Annotated[
    str, typer.Option("--lang", help="ko (Kiwi morphemes), en (rouge-score default) or auto.")
]
BertModelOpt = Annotated[
    str | None,
    typer.Option(
        "--bertscore-model",
        help="Hub id or local folder (default: bert-base-multilingual-cased for ko, "
        "roberta-large for en).",
    ),
]
BertLayerOpt = Annotated[
    int | None,
    typer.Option(
        "--bertscore-layer", min=1, help="Layer to use (default: bert-score's table for MODEL)."
    ),
]
BertBaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--bertscore-baseline",
        help="bert-score baseline CSV; rescales BERTScore (off without one: none exists for ko).",
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Run name in reports (default: the --out folder).")
]


def _settings(
    metrics: str,
    lang: str,
    bertscore_model: str | None,
    bertscore_layer: int | None,
    bertscore_idf: bool,
    bertscore_baseline: Path | None,
) -> Any:
    from polisum.eval.text import TextMetricError, TextMetricSettings

    try:
        return TextMetricSettings(
            metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()),
            lang=lang,
            bertscore_model=bertscore_model,
            bertscore_layer=bertscore_layer,
            bertscore_idf=bertscore_idf,
            bertscore_baseline=str(bertscore_baseline) if bertscore_baseline else None,
        )
    except TextMetricError as exc:
        fail(str(exc))


def _print_scores(title: str, run: Any) -> None:
    from polisum.eval.report import display_name

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("n", justify="right")
    for name, s in run.metrics.items():
        ci = "–" if s.method == "degenerate" else f"[{s.low:.3f}, {s.high:.3f}]"
        table.add_row(display_name(name), f"{s.mean:.3f}", ci, str(s.n))
    out.print(table)
    st = run.settings
    parts = [f"lang {st['lang']}"]
    if "rouge" in st:
        parts.append(f"ROUGE tokenizer {st['rouge']['tokenizer']}")
    if "bertscore" in st:
        b = st["bertscore"]
        rescale = "rescaled" if b["rescale_with_baseline"] else "not rescaled"
        parts.append(f"BERTScore {b['model']} layer {b['layer']}, {rescale}")
    parts.append(f"settings {run.fingerprint}")
    err.print("[dim]" + safe(" · ".join(parts)) + "[/]")


def _save(run: Any, folder: Path | None, as_json: bool) -> None:
    if folder is None:
        if not as_json:
            err.print("[dim]not saved: add --out RUN_DIR to keep this run for `eval report`[/]")
        return
    try:
        run.save(folder)
    except OSError as exc:
        fail(f"{folder}: cannot save the run ({exc.strerror or exc})")
    if not as_json:
        err.print(f"saved run to {safe(str(folder))}")


@eval_app.command("text")
def eval_text(
    pred: Annotated[Path, typer.Option("--pred", help="Predictions: JSONL {id, text}.")],
    ref: Annotated[
        Path, typer.Option("--ref", help="References: JSONL {id, text} (text may be a list).")
    ],
    lang: LangOpt = "auto",
    metrics: Annotated[str, typer.Option(help="Comma-separated: rouge, bertscore.")] = (
        "rouge,bertscore"
    ),
    bertscore_model: BertModelOpt = None,
    bertscore_layer: BertLayerOpt = None,
    bertscore_idf: Annotated[
        bool, typer.Option("--bertscore-idf", help="Weight tokens by idf over the references.")
    ] = False,
    bertscore_baseline: BertBaselineOpt = None,
    out_dir: OutOpt = None,
    name: NameOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score predictions against references: ROUGE-1/2/L/Lsum and BERTScore with 95% CIs."""
    from polisum.eval.io import match_by_id, read_texts
    from polisum.eval.text import TextEvaluator, TextMetricError

    settings = _settings(
        metrics, lang, bertscore_model, bertscore_layer, bertscore_idf, bertscore_baseline
    )
    try:
        preds = read_texts(pred)
        refs = read_texts(ref, allow_multiple=True)
        ids, predictions, references, extra = match_by_id(preds, refs, pred, ref)
        if extra:
            shown = ", ".join(extra[:10]) + (" …" if len(extra) > 10 else "")
            err.print(f"[yellow]note:[/] {len(extra)} prediction(s) have no reference: {shown}")
        with err.status("scoring…", spinner="dots") if not as_json else nullcontext():
            result = TextEvaluator(settings).evaluate(predictions, references, ids=ids)
    except TextMetricError as exc:
        fail(str(exc))
    run = result.to_run(
        name or (out_dir.name if out_dir else pred.stem), pred=str(pred), ref=str(ref)
    )
    for warning in result.info.get("warnings", []):
        err.print(f"[yellow]warning:[/] {safe(warning)}")
    _save(run, out_dir, as_json)
    if as_json:
        print_json({"name": run.name, **result.to_dict(), "saved": str(out_dir or "") or None})
        return
    _print_scores(f"{result.n} items · {result.empty_predictions} empty prediction(s)", run)


@eval_app.command("answers")
def eval_answers(
    qa: Annotated[
        Path, typer.Option("--qa", help="KorQuAD/SQuAD JSON, or JSONL {question, answers, gold}.")
    ],
    index: IndexOpt = None,
    generator: Annotated[
        str | None,
        typer.Option(
            "--generator",
            help="hf:ID_OR_PATH, gguf:PATH, openai:MODEL or 'default'; none = extractive.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N questions.")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Passages the answerer retrieves.")] = 5,
    lang: LangOpt = "auto",
    metrics: Annotated[
        str, typer.Option(help="Text metrics against the gold answers: rouge, bertscore.")
    ] = "rouge",
    bertscore_model: BertModelOpt = None,
    bertscore_layer: BertLayerOpt = None,
    out_dir: OutOpt = None,
    name: NameOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer every question of a QA set and score retrieval, answers and citations."""
    from polisum.chat import Answerer
    from polisum.commands.chat import load_generator_or_fail
    from polisum.eval.answers import AnswerEvaluator, load_qa
    from polisum.eval.text import TextMetricError
    from polisum.generate import GeneratorError

    settings = _settings(metrics, lang, bertscore_model, bertscore_layer, False, None)
    try:
        items = load_qa(qa, limit=limit)
    except TextMetricError as exc:
        fail(str(exc))
    gen = load_generator_or_fail(index, None, generator, None, None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with open_index(index, create=False) as idx:
        answerer = Answerer(idx, gen, k=k)
        evaluator = AnswerEvaluator(settings)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json,
        ) as bar:
            task = bar.add_task("answering", total=len(items))
            try:
                result = evaluator.evaluate(
                    answerer,
                    items,
                    search=lambda q, n: idx.search(q, k=n),
                    progress=lambda n: bar.advance(task, n),
                )
            except (TextMetricError, GeneratorError) as exc:
                fail(str(exc))
    gen_name = getattr(gen, "name", None) or "extractive"
    run = result.to_run(
        name or (out_dir.name if out_dir else f"{qa.stem}-{gen_name}"),
        qa=str(qa),
        index=str(idx.path),
        generator=gen_name,
        k=k,
        limit=limit,
    )
    _save(run, out_dir, as_json)
    if as_json:
        print_json(
            {
                "name": run.name,
                "n": result.n,
                "refused": result.refused,
                "empty_predictions": result.empty_predictions,
                "fingerprint": result.fingerprint,
                "settings": result.settings,
                "metrics": {k: v.to_dict() for k, v in result.metrics.items()},
                "saved": str(out_dir) if out_dir else None,
            }
        )
        return
    _print_scores(
        f"{result.n} questions · generator {gen_name} · {result.refused} refused · "
        f"{result.empty_predictions} empty",
        run,
    )


@eval_app.command("report")
def eval_report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders made with --out.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for report.md, report.html and the PNGs.")
    ] = Path("eval-report"),
    title: Annotated[str, typer.Option(help="Report title.")] = "polisum eval report",
    as_json: JsonOpt = False,
) -> None:
    """One Markdown + HTML report with tables and plots; refuses runs with different settings."""
    from polisum.eval.report import write_report
    from polisum.eval.runs import EvalRun, RunError

    try:
        loaded = [EvalRun.load(r) for r in runs]
        files = write_report(loaded, out_dir, title=title)
    except RunError as exc:
        fail(str(exc))
    if as_json:
        print_json(
            {
                "markdown": str(files.markdown),
                "html": str(files.html),
                "images": [str(p) for p in files.images],
            }
        )
        return
    err.print(
        f"wrote {safe(str(files.markdown))}, {safe(str(files.html))} "
        f"and {len(files.images)} plot(s)"
    )
