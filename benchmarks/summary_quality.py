"""ROUGE of polisum's summaries on Korean news: extractive vs LLM summarizers.

Data (``../shared/data/sum_ko``, read as is):

- ``sci_news_sum_kr_50``: 25 science news articles, each with the indices of the sentences
  people selected as its summary (the reference is those sentences, in order);
- ``dacon_news_sample``: 6 news articles with an abstractive (human-written) and an extractive
  (sentence indices) reference.

Each article is summarized as one text by each summarizer spec given (default: ``extractive``,
plus a lead-3 baseline). ROUGE comes from ``polisum.eval.text.TextEvaluator`` (rouge-score with
Kiwi morpheme tokens: rouge-score's own tokenizer deletes Hangul), F1 with bootstrap 95% CIs.

    python benchmarks/summary_quality.py                       # extractive + lead-3
    python benchmarks/summary_quality.py --summarizer gguf:PATH --limit 5
    python benchmarks/summary_quality.py --summarizer hf:./distilled-gemma --json out.json
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sum_ko"


def load_sets(data: Path, limit: int | None) -> dict[str, list[dict]]:
    """{set name: [{id, text, reference}]}, one entry per (article, reference kind)."""
    sci = []
    for path in sorted((data / "sci_news_sum_kr_50").glob("*.json")):
        article = json.loads(path.read_text(encoding="utf-8"))
        sentences = [s.strip().rstrip(".") + "." for s in article["sentences"]]
        reference = " ".join(sentences[i] for i in sorted(article["summaries"]))
        sci.append({"id": path.stem, "text": " ".join(sentences), "reference": reference})
    dacon_abs, dacon_ext = [], []
    lines = (data / "dacon_news_sample" / "train_test_part1.jsonl").read_text(encoding="utf-8")
    for line in lines.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        sentences = _as_list(record["article_original"])
        indices = _as_list(record["extractive"])
        text = " ".join(sentences)
        dacon_abs.append({"id": record["id"], "text": text, "reference": record["abstractive"]})
        reference = " ".join(sentences[i] for i in indices)
        dacon_ext.append({"id": record["id"], "text": text, "reference": reference})
    sets = {
        "sci_news_sum_kr_50 (human-selected sentences)": sci,
        "dacon (abstractive)": dacon_abs,
        "dacon (extractive indices)": dacon_ext,
    }
    return {k: v[:limit] if limit else v for k, v in sets.items()}


def _as_list(value: object) -> list:
    """The dump stores some lists as Python list literals in strings."""
    return list(value) if isinstance(value, list) else list(ast.literal_eval(str(value)))


def lead3(text: str) -> str:
    from polisum.text import split_sentences

    return " ".join(s.text.strip() for s in split_sentences(text)[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--summarizer",
        action="append",
        default=[],
        help="extra summarizer spec(s): hf:ID_OR_PATH, gguf:PATH, openai:MODEL",
    )
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--n-ctx", type=int, default=8192, help="gguf: context per request")
    parser.add_argument("--limit", type=int, default=None, help="articles per set")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args()

    from polisum.eval.text import TextEvaluator, TextMetricSettings
    from polisum.summarize import load_summarizer

    sets = load_sets(args.data, args.limit)
    evaluator = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="ko"))
    systems: dict[str, object] = {"lead-3": None, "extractive": load_summarizer("extractive")}
    for spec in args.summarizer:
        options = {"max_new_tokens": args.max_new_tokens}
        if spec.startswith("gguf:"):
            options["n_ctx"] = args.n_ctx
        systems[spec] = load_summarizer(
            spec, adapter=args.adapter, base_url=args.base_url, **options
        )

    # Summarize each distinct article once per system (dacon's two reference kinds share them).
    texts = {item["text"] for items in sets.values() for item in items}
    outputs: dict[str, dict[str, str]] = {}
    timing: dict[str, float] = {}
    extra: dict[str, dict] = {}
    for name, system in systems.items():
        started = time.perf_counter()
        ordered = sorted(texts)
        if system is None:
            made = [lead3(t) for t in ordered]
        else:
            made = system.summarize(ordered)
            if hasattr(system, "stats"):
                extra[name] = {
                    **dict(system.stats),
                    "unsupported_rate": round(system.hallucination_rate, 4),
                }
        timing[name] = time.perf_counter() - started
        outputs[name] = dict(zip(ordered, made, strict=True))
        print(f"{name}: {len(ordered)} articles in {timing[name]:.1f}s", file=sys.stderr)

    results: dict[str, dict] = {}
    print("| set | system | n | ROUGE-1 F1 | ROUGE-2 F1 | ROUGE-L F1 | mean chars |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for set_name, items in sets.items():
        for name in systems:
            predictions = [outputs[name][item["text"]] for item in items]
            scores = evaluator.evaluate(
                predictions, [item["reference"] for item in items], [item["id"] for item in items]
            )
            m = scores.metrics
            mean_chars = sum(map(len, predictions)) / len(predictions)
            results.setdefault(set_name, {})[name] = {
                k: {"mean": v.mean, "low": v.low, "high": v.high} for k, v in m.items()
            }
            print(
                f"| {set_name} | {name} | {len(items)} | "
                + " | ".join(
                    f"{m[k].mean:.3f} [{m[k].low:.3f}, {m[k].high:.3f}]"
                    for k in ("rouge1", "rouge2", "rougeL")
                )
                + f" | {mean_chars:.0f} |"
            )
    if extra:
        print("\nLLM summarizer stats:", json.dumps(extra, ensure_ascii=False))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results, "seconds": timing, "llm_stats": extra, "outputs": outputs},
                ensure_ascii=False,
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
