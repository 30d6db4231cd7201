"""Text metrics for summaries and answers: ROUGE-1/2/L/Lsum and BERTScore, per item and with
bootstrap confidence intervals.

ROUGE is rouge-score (Google's reimplementation of ROUGE-1.5.5). Its default tokenizer keeps
only ``[a-z0-9]`` and so deletes every Hangul character: Korean text would score 0 against
anything. For Korean, tokens are therefore Kiwi morphemes (``KiwiRougeTokenizer``); English keeps
rouge-score's default tokenizer so numbers stay comparable with published English results.
ROUGE-Lsum needs sentences; they are split with Kiwi (rouge-score would need NLTK's punkt data,
which is a download) and passed one per line, as rouge-score expects.

BERTScore is bert-score with the model and layer always explicit and recorded. ``lang="ko"``
in bert-score means ``bert-base-multilingual-cased`` layer 9, which is the Korean default here;
bert-score ships no Korean baseline file, so rescaling is off unless a baseline file is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from polisum.errors import PolisumError
from polisum.eval.runs import EvalRun, provenance
from polisum.eval.stats import MetricSummary, bootstrap_ci

__all__ = [
    "BERTSCORE_DEFAULTS",
    "ROUGE_TYPES",
    "KiwiRougeTokenizer",
    "TextEvalResult",
    "TextEvaluator",
    "TextMetricError",
    "TextMetricSettings",
    "resolve_lang",
    "rouge_tokenizer",
]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
METRIC_FAMILIES = ("rouge", "bertscore")
# Model and layer per language, as bert-score picks them for ``lang=`` (its model2layers table).
BERTSCORE_DEFAULTS: dict[str, tuple[str, int]] = {
    "ko": ("bert-base-multilingual-cased", 9),
    "en": ("roberta-large", 17),
}
# Kiwi tags that are punctuation and symbols (sentence-final, quotes, brackets, ellipsis, other
# symbols, bullets). Dropped like rouge-score drops non-alphanumerics for English. Foreign words
# (SL), hanja (SH) and numbers (SN) are content and stay.
_PUNCT_TAGS = ("SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB")


class TextMetricError(PolisumError, RuntimeError):
    """Bad input or a metric backend that cannot run; the message names the file or model."""


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


class KiwiRougeTokenizer:
    """Kiwi morphemes, lower-cased, punctuation dropped; particles and endings are kept.

    Keeping every morpheme (not only content words) is what Korean summarization papers do with
    morpheme-level ROUGE (usually Mecab); Kiwi is used because polisum already depends on it.
    """

    name = "kiwi-morphemes"

    def tokenize(self, text: str) -> list[str]:
        from polisum.text import kiwi_tokens

        tokens = kiwi_tokens(text)
        return [t.form.lower() for t in tokens if t.tag not in _PUNCT_TAGS]

    @property
    def spec(self) -> str:
        return f"{self.name}(kiwipiepy {_pkg_version('kiwipiepy')}, punctuation dropped, lower)"


def rouge_tokenizer(lang: str) -> tuple[Any, str]:
    """The ROUGE tokenizer for ``lang`` and a string that identifies it in run settings."""
    if lang == "ko":
        tok = KiwiRougeTokenizer()
        return tok, tok.spec
    if lang == "en":
        from rouge_score.tokenizers import DefaultTokenizer

        return DefaultTokenizer(use_stemmer=False), "rouge-score-default(no stemmer)"
    raise TextMetricError(f"unknown language '{lang}' (expected ko, en or auto)")


def resolve_lang(lang: str, texts: Sequence[str]) -> str:
    """``auto`` → ``ko`` when the texts are mostly Hangul, else ``en``; decided once per run so
    every item is tokenized the same way."""
    if lang in ("ko", "en"):
        return lang
    if lang != "auto":
        raise TextMetricError(f"unknown language '{lang}' (expected ko, en or auto)")
    from polisum.text import detect_language

    return detect_language(" ".join(texts[:200]))


@dataclass(frozen=True)
class TextMetricSettings:
    """Everything that changes a text-metric score; its resolved form keys a run's fingerprint."""

    metrics: tuple[str, ...] = METRIC_FAMILIES
    lang: str = "auto"
    bertscore_model: str | None = None  # default: BERTSCORE_DEFAULTS[lang]
    bertscore_layer: int | None = None  # default: the model's layer in bert-score's table
    bertscore_idf: bool = False
    bertscore_baseline: str | None = None  # a bert-score baseline CSV turns rescaling on
    confidence: float = 0.95
    n_resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_FAMILIES]
        if unknown or not self.metrics:
            raise TextMetricError(
                f"unknown metric(s) {', '.join(unknown) or '(none given)'}: "
                f"choose from {', '.join(METRIC_FAMILIES)}"
            )
        if self.lang not in ("ko", "en", "auto"):
            raise TextMetricError(f"unknown language '{self.lang}' (expected ko, en or auto)")
        if self.bertscore_baseline and not Path(self.bertscore_baseline).is_file():
            raise TextMetricError(f"{self.bertscore_baseline}: BERTScore baseline file not found")

    def bertscore_model_layer(self, lang: str) -> tuple[str, int]:
        model = self.bertscore_model or BERTSCORE_DEFAULTS[lang][0]
        if self.bertscore_layer is not None:
            return model, self.bertscore_layer
        from bert_score.utils import model2layers

        if model not in model2layers:
            raise TextMetricError(
                f"BERTScore model '{model}' is not in bert-score's layer table: "
                "give the layer explicitly (--bertscore-layer N)"
            )
        return model, int(model2layers[model])

    def resolved(self, lang: str) -> dict[str, Any]:
        """The settings with every default made explicit (what the fingerprint hashes)."""
        out: dict[str, Any] = {
            "lang": lang,
            "metrics": sorted(self.metrics),
            "bootstrap": {
                "statistic": "mean",
                "confidence": self.confidence,
                "n_resamples": self.n_resamples,
                "seed": self.seed,
                "method": "scipy.stats.bootstrap BCa (percentile fallback)",
            },
        }
        if "rouge" in self.metrics:
            out["rouge"] = {
                "types": list(ROUGE_TYPES),
                "score": "F-measure",
                "tokenizer": rouge_tokenizer(lang)[1],
                "lsum_sentence_split": "kiwi",
                "rouge_score": _pkg_version("rouge-score"),
                "multi_reference": "max F over references",
            }
        if "bertscore" in self.metrics:
            model, layer = self.bertscore_model_layer(lang)
            baseline = self.bertscore_baseline
            out["bertscore"] = {
                "model": model,
                "layer": layer,
                "idf": self.bertscore_idf,
                "rescale_with_baseline": baseline is not None,
                "baseline_sha256": _sha256(Path(baseline)) if baseline else None,
                "bert_score": _pkg_version("bert-score"),
                "multi_reference": "max F1 over references",
            }
        return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(settings: dict[str, Any]) -> str:
    """Short stable hash of resolved settings: equal hashes ⇔ scores are comparable."""
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class TextEvalResult:
    """Scores of one run: per-item values, their means with CIs, and the settings used."""

    settings: dict[str, Any]
    fingerprint: str
    metrics: dict[str, MetricSummary]
    items: list[dict[str, Any]]
    empty_predictions: int
    n: int
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "empty_predictions": self.empty_predictions,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            **({"info": self.info} if self.info else {}),
        }

    def to_run(self, name: str, **inputs: Any) -> EvalRun:
        """This result as a saveable run; ``inputs`` (file paths, ...) are recorded with it."""
        info = provenance(
            n=self.n, empty_predictions=self.empty_predictions, inputs=inputs, **self.info
        )
        return EvalRun(
            "text", name, self.settings, self.fingerprint, self.metrics, self.items, info
        )


def _sentences_per_line(text: str) -> str:
    from polisum.text import split_sentences

    if "\n" in text.strip():  # already one sentence per line (the usual Lsum input)
        return text
    return "\n".join(s.text.strip() for s in split_sentences(text))


class TextEvaluator:
    """Scores predictions against references with the metrics in ``settings``.

    >>> TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="ko")).evaluate(
    ...     ["나는 밥을 먹었다"], ["나는 밥을 먹었다"]).metrics["rouge1"].mean
    1.0
    """

    def __init__(self, settings: TextMetricSettings | None = None) -> None:
        self.settings = settings or TextMetricSettings()
        self._bertscorers: dict[tuple[str, int, str], Any] = {}

    def evaluate(
        self,
        predictions: Sequence[str],
        references: Sequence[str | Sequence[str]],
        ids: Sequence[str] | None = None,
        batch_size: int = 16,
    ) -> TextEvalResult:
        if len(predictions) != len(references):
            raise TextMetricError(
                f"{len(predictions)} predictions but {len(references)} references"
            )
        if not predictions:
            raise TextMetricError("nothing to evaluate: no predictions")
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        blank = [i for i, r in enumerate(refs) if not any(x.strip() for x in r)]
        if blank:
            names = [str(ids[i]) if ids is not None else str(i) for i in blank[:10]]
            raise TextMetricError(f"empty reference for item(s): {', '.join(names)}")
        ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(refs))]
        lang = resolve_lang(self.settings.lang, [r[0] for r in refs])
        resolved = self.settings.resolved(lang)
        warnings: list[str] = []
        mostly_korean = resolve_lang("auto", [r[0] for r in refs]) == "ko"
        if lang == "en" and "rouge" in self.settings.metrics and mostly_korean:
            # rouge-score's tokenizer keeps [a-z0-9] only: what is left of Korean is digits
            warnings.append(
                "references are mostly Korean but lang is en: rouge-score's default "
                "tokenizer drops Hangul, so ROUGE measures only digits and Latin letters "
                "(use --lang ko)"
            )
        empty = [not p.strip() for p in predictions]

        per_metric: dict[str, list[float]] = {}
        if "rouge" in self.settings.metrics:
            per_metric.update(self._rouge(predictions, refs, lang))
        if "bertscore" in self.settings.metrics:
            per_metric.update(self._bertscore(predictions, refs, lang, batch_size))
        items = [
            {"id": ids[i], "empty": empty[i], **{k: v[i] for k, v in per_metric.items()}}
            for i in range(len(ids))
        ]
        s = self.settings
        metrics = {
            k: bootstrap_ci(v, s.confidence, s.n_resamples, s.seed) for k, v in per_metric.items()
        }
        return TextEvalResult(
            settings=resolved,
            fingerprint=fingerprint(resolved),
            metrics=metrics,
            items=items,
            empty_predictions=int(sum(empty)),
            n=len(ids),
            info={"warnings": warnings} if warnings else {},
        )

    # -- ROUGE --------------------------------------------------------------------------------
    @staticmethod
    def _rouge(
        predictions: Sequence[str], refs: list[list[str]], lang: str
    ) -> dict[str, list[float]]:
        try:
            from rouge_score import rouge_scorer
        except ImportError as exc:
            raise TextMetricError('ROUGE needs rouge-score: pip install "polisum[eval]"') from exc
        tokenizer, _ = rouge_tokenizer(lang)
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tokenizer)
        out: dict[str, list[float]] = {t: [] for t in ROUGE_TYPES}
        for pred, targets in zip(predictions, refs, strict=True):
            # Lsum reads newline-separated sentences; the other types ignore the newlines.
            pred_lines = _sentences_per_line(pred)
            target_lines = [_sentences_per_line(t) for t in targets]
            scores = scorer.score_multi(target_lines, pred_lines)
            for t in ROUGE_TYPES:
                out[t].append(float(scores[t].fmeasure))
        return out

    # -- BERTScore ----------------------------------------------------------------------------
    def _scorer(self, lang: str) -> Any:
        model, layer = self.settings.bertscore_model_layer(lang)
        key = (model, layer, lang)
        if key in self._bertscorers:
            return self._bertscorers[key]
        try:
            from bert_score import BERTScorer
        except ImportError as exc:
            raise TextMetricError(
                'BERTScore needs bert-score: pip install "polisum[eval]"'
            ) from exc
        baseline = self.settings.bertscore_baseline
        try:
            scorer = BERTScorer(
                model_type=model,
                num_layers=layer,
                lang=lang,
                # idf weights come from each run's references (_bertscore), never from the hub
                idf=self.settings.bertscore_idf,
                rescale_with_baseline=baseline is not None,
                baseline_path=baseline,
            )
        except (OSError, ValueError, KeyError, AssertionError) as exc:
            raise TextMetricError(
                f"cannot load BERTScore model '{model}' (layer {layer}): {str(exc).rstrip('.')}. "
                "Give a local model folder with --bertscore-model PATH --bertscore-layer N, "
                "or leave BERTScore out with --metrics rouge"
            ) from exc
        self._bertscorers[key] = scorer
        return scorer

    def _bertscore(
        self,
        predictions: Sequence[str],
        refs: list[list[str]],
        lang: str,
        batch_size: int,
    ) -> dict[str, list[float]]:
        scorer = self._scorer(lang)
        if self.settings.bertscore_idf:
            scorer.compute_idf([r for rs in refs for r in rs])
        # Empty strings never reach bert-score: its empty-sentence path calls a tokenizer
        # method transformers 5 removed. Empty predictions are scored 0 below anyway, so any
        # placeholder will do; empty references among several are simply not references.
        cands = [p if p.strip() else "." for p in predictions]
        targets = [[t for t in ts if t.strip()] for ts in refs]
        # bert-score takes the max over references per prediction, as ROUGE's score_multi does.
        p, r, f = scorer.score(cands, targets, batch_size=batch_size, verbose=False)
        values = {"bertscore_P": p.tolist(), "bertscore_R": r.tolist(), "bertscore_F1": f.tolist()}
        # An empty prediction has no tokens to match; bert-score's value for it is an artefact
        # of the special tokens, so it scores 0 like ROUGE does.
        for i, pred in enumerate(predictions):
            if not pred.strip():
                for v in values.values():
                    v[i] = 0.0
        return {k: [float(x) for x in v] for k, v in values.items()}
