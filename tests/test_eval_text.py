"""Text metrics: Korean ROUGE via Kiwi morphemes, BERTScore through a tiny local BERT, bootstrap
CIs, settings fingerprints, and `polisum eval text`."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("rouge_score", reason="needs the eval extra")

from polisum.cli import app
from polisum.eval import (
    KiwiRougeTokenizer,
    TextEvaluator,
    TextMetricError,
    TextMetricSettings,
    bootstrap_ci,
)

runner = CliRunner()
ROUGE_KO = TextMetricSettings(metrics=("rouge",), lang="ko")


def _f(p: Fraction, r: Fraction) -> float:
    return float(2 * p * r / (p + r))


def test_rouge_score_default_tokenizer_deletes_hangul_but_kiwi_tokens_do_not():
    from rouge_score import rouge_scorer

    default = rouge_scorer.RougeScorer(["rouge1"]).score("나는 빵을 먹었다", "나는 밥을 먹었다")
    assert default["rouge1"].fmeasure == 0.0  # the silent failure this module exists to avoid
    ours = TextEvaluator(ROUGE_KO).evaluate(["나는 밥을 먹었다"], ["나는 빵을 먹었다"])
    assert ours.metrics["rouge1"].mean > 0


def test_korean_rouge_matches_hand_computed_values():
    tok = KiwiRougeTokenizer()
    # The hand computation below rests on these morphemes.
    assert tok.tokenize("나는 밥을 먹었다") == ["나", "는", "밥", "을", "먹", "었", "다"]
    assert tok.tokenize("나는 빵을 먹었다") == ["나", "는", "빵", "을", "먹", "었", "다"]
    assert tok.tokenize("밥을 나는 먹었다.") == ["밥", "을", "나", "는", "먹", "었", "다"]
    assert tok.tokenize("청년 월세를 지원한다") == ["청년", "월세", "를", "지원", "하", "ᆫ다"]
    assert tok.tokenize("서울시는 청년 월세를 지원한다.")[:2] == ["서울시", "는"]

    preds = ["나는 밥을 먹었다", "청년 월세를 지원한다", "밥을 나는 먹었다."]
    refs = ["나는 빵을 먹었다", "서울시는 청년 월세를 지원한다.", "나는 밥을 먹었다"]
    items = TextEvaluator(ROUGE_KO).evaluate(preds, refs).items
    expected = [
        # 6 of 7 unigrams; 4 of 6 bigrams (밥을/빵을 breaks two); LCS 6 of 7
        {"rouge1": 6 / 7, "rouge2": 4 / 6, "rougeL": 6 / 7},
        # pred ⊂ ref: P = 1, R = 6/8 unigrams, 5/7 bigrams, LCS 6 of 8
        {
            "rouge1": _f(Fraction(1), Fraction(6, 8)),
            "rouge2": _f(Fraction(1), Fraction(5, 7)),
            "rougeL": _f(Fraction(1), Fraction(6, 8)),
        },
        # same bag of morphemes, order swapped: R1 = 1, bigrams 4 of 6, LCS 5 of 7
        {"rouge1": 1.0, "rouge2": 4 / 6, "rougeL": 5 / 7},
    ]
    for item, exp in zip(items, expected, strict=True):
        for metric, value in exp.items():
            assert item[metric] == pytest.approx(value), (item["id"], metric)
        # one sentence each, so summary-level LCS equals sentence-level LCS
        assert item["rougeLsum"] == pytest.approx(exp["rougeL"])


def test_identical_prediction_and_reference_score_one_in_both_languages():
    texts = [
        "서울시는 청년에게 월세를 지원한다. 신청은 온라인으로 한다.",
        "청년 교통비를 돌려준다.",
    ]
    for lang, data in (("ko", texts), ("en", ["The cat sat on the mat.", "Libraries open at 9."])):
        result = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang=lang)).evaluate(
            data, data
        )
        for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
            assert result.metrics[name].mean == pytest.approx(1.0), (lang, name)
            assert result.metrics[name].method == "degenerate"  # no spread, no fake interval


def test_english_uses_rouge_score_default_tokenizer():
    result = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="en")).evaluate(
        ["the cat sat"], ["The cat sat on the mat."]
    )
    # default tokenizer: lower-cased, punctuation dropped → 3 of 6 tokens, P = 1
    assert result.items[0]["rouge1"] == pytest.approx(_f(Fraction(1), Fraction(3, 6)))
    assert result.settings["rouge"]["tokenizer"].startswith("rouge-score-default")


def test_auto_language_and_multi_reference_takes_the_best():
    result = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="auto")).evaluate(
        ["나는 밥을 먹었다"], [["전혀 다른 문장", "나는 밥을 먹었다"]]
    )
    assert result.settings["lang"] == "ko"
    assert result.items[0]["rouge1"] == pytest.approx(1.0)


def test_empty_predictions_are_counted_and_score_zero():
    result = TextEvaluator(ROUGE_KO).evaluate(["", "나는 밥을 먹었다"], ["나는 밥을", "나는 밥을"])
    assert result.empty_predictions == 1
    assert result.items[0]["rouge1"] == 0.0 and result.items[0]["empty"] is True
    assert result.n == 2


def test_bootstrap_ci_contains_the_point_estimate():
    import numpy as np

    rng = np.random.default_rng(3)
    for values in (rng.random(40), rng.beta(0.3, 3.0, 25), [0.0, 0.0, 1.0, 0.2]):
        s = bootstrap_ci(values)
        assert s.low <= s.mean <= s.high
        assert s.low < s.high
        assert s.mean == pytest.approx(float(np.mean(values)))
    # more data, narrower interval
    wide, narrow = bootstrap_ci(rng.random(20)), bootstrap_ci(rng.random(2000))
    assert narrow.high - narrow.low < wide.high - wide.low
    assert bootstrap_ci([0.5, 0.5, 0.5]).method == "degenerate"
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_real_run_cis_contain_their_means():
    preds = ["나는 밥을 먹었다", "청년 월세를 지원한다", "오늘은 비가 온다", "전혀 관계없는 말"]
    refs = ["나는 빵을 먹었다", "서울시는 청년 월세를 지원한다.", "오늘은 비가 온다", "청년 교통비"]
    result = TextEvaluator(ROUGE_KO).evaluate(preds, refs)
    for s in result.metrics.values():
        assert s.low <= s.mean <= s.high and s.n == 4


def test_settings_fingerprint_changes_with_metric_settings():
    data = (["나는 밥을 먹었다"], ["나는 빵을 먹었다"])
    ko = TextEvaluator(ROUGE_KO).evaluate(*data)
    again = TextEvaluator(ROUGE_KO).evaluate(*data)
    en = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="en")).evaluate(*data)
    fewer = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="ko", n_resamples=500))
    assert ko.fingerprint == again.fingerprint
    assert en.fingerprint != ko.fingerprint
    assert fewer.evaluate(*data).fingerprint != ko.fingerprint
    assert en.items[0]["rouge1"] == 0.0  # and that is why: English tokenizer on Korean
    assert "use --lang ko" in en.info["warnings"][0]
    assert not ko.info.get("warnings")


def test_bad_settings_are_clear_errors(tmp_path: Path):
    with pytest.raises(TextMetricError, match="unknown metric"):
        TextMetricSettings(metrics=("bleu",))
    with pytest.raises(TextMetricError, match="language"):
        TextMetricSettings(lang="fr")
    with pytest.raises(TextMetricError, match="baseline file not found"):
        TextMetricSettings(bertscore_baseline=str(tmp_path / "nope.csv"))
    with pytest.raises(TextMetricError, match="--bertscore-layer"):
        TextMetricSettings(bertscore_model=str(tmp_path)).bertscore_model_layer("ko")
    with pytest.raises(TextMetricError, match=r"empty reference for item\(s\): b$"):
        TextEvaluator(ROUGE_KO).evaluate(["가", "나"], ["가", [" ", ""]], ids=["a", "b"])
    with pytest.raises(TextMetricError, match="2 predictions but 1 references"):
        TextEvaluator(ROUGE_KO).evaluate(["가", "나"], ["가"])
    # the documented Korean default is explicit: bert-score's choice for lang="ko"
    assert TextMetricSettings().bertscore_model_layer("ko") == ("bert-base-multilingual-cased", 9)


# -- BERTScore through a tiny local BERT --------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 3-layer BERT and a WordPiece vocabulary trained here, saved like a hub model."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    corpus = [
        "서울시는 청년에게 월세를 지원한다",
        "나는 밥을 먹었다",
        "오늘은 비가 온다",
        "the cat sat on the mat",
    ] * 4
    wordpiece = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wordpiece.train_from_iterator(corpus, vocab_size=300, min_frequency=1)
    wordpiece.save_model(str(folder))
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=False, model_max_length=64)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_bertscore_runs_through_the_same_code_with_a_local_model(tiny_bert: Path):
    settings = TextMetricSettings(
        metrics=("rouge", "bertscore"),
        lang="ko",
        bertscore_model=str(tiny_bert),
        bertscore_layer=2,
    )
    preds = ["나는 밥을 먹었다", "오늘은 비가 온다", ""]
    refs = ["나는 밥을 먹었다", "서울시는 청년에게 월세를 지원한다", "오늘은 비가 온다"]
    result = TextEvaluator(settings).evaluate(preds, refs)
    items = result.items
    assert items[0]["bertscore_F1"] == pytest.approx(1.0, abs=1e-5)  # identical texts
    assert items[1]["bertscore_F1"] < 0.999  # different texts, even for a random model
    assert items[2]["bertscore_F1"] == 0.0 and result.empty_predictions == 1
    assert {"bertscore_P", "bertscore_R", "bertscore_F1", "rouge1"} <= set(result.metrics)
    bs = result.settings["bertscore"]
    assert bs["model"] == str(tiny_bert) and bs["layer"] == 2
    assert bs["rescale_with_baseline"] is False and bs["baseline_sha256"] is None

    other_layer = TextMetricSettings(
        metrics=("bertscore",), lang="ko", bertscore_model=str(tiny_bert), bertscore_layer=1
    )
    assert TextEvaluator(other_layer).evaluate(preds, refs).fingerprint != result.fingerprint


def test_bertscore_model_that_cannot_load_names_it(tmp_path: Path):
    settings = TextMetricSettings(
        metrics=("bertscore",), lang="ko", bertscore_model=str(tmp_path / "missing"),
        bertscore_layer=2,
    )  # fmt: skip
    with pytest.raises(TextMetricError, match="missing"):
        TextEvaluator(settings).evaluate(["가"], ["나"])


# -- CLI ----------------------------------------------------------------------------------------
def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_cli_text_json_and_saved_run(tmp_path: Path, tiny_bert: Path):
    pred = _jsonl(
        tmp_path / "pred.jsonl",
        [{"id": 1, "text": "나는 밥을 먹었다"}, {"id": 2, "text": ""}, {"id": 3, "text": "x"}],
    )
    ref = _jsonl(
        tmp_path / "ref.jsonl",
        [{"id": "2", "text": "오늘은 비가 온다"}, {"id": "1", "text": "나는 빵을 먹었다"}],
    )
    run_dir = tmp_path / "run"
    args = ["eval", "text", "--pred", str(pred), "--ref", str(ref), "--json", "--out", str(run_dir)]
    args += ["--bertscore-model", str(tiny_bert), "--bertscore-layer", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 2 and data["empty_predictions"] == 1
    assert data["settings"]["lang"] == "ko"
    assert data["metrics"]["rouge1"]["mean"] == pytest.approx((6 / 7 + 0) / 2)
    assert "bertscore_F1" in data["metrics"]
    saved = json.loads((run_dir / "run.json").read_text("utf-8"))
    assert saved["fingerprint"] == data["fingerprint"]
    lines = (run_dir / "items.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["2", "1"]  # reference order


def test_cli_text_missing_ids_and_bad_files_are_named(tmp_path: Path):
    pred = _jsonl(tmp_path / "pred.jsonl", [{"id": "a", "text": "가"}])
    ref = _jsonl(tmp_path / "ref.jsonl", [{"id": "a", "text": "가"}, {"id": "zz-7", "text": "나"}])
    result = runner.invoke(
        app, ["eval", "text", "--pred", str(pred), "--ref", str(ref), "--metrics", "rouge"]
    )
    assert result.exit_code == 2
    assert "zz-7" in result.output and "pred.jsonl" in result.output

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "text": "가"}\n{not json\n', "utf-8")
    result = runner.invoke(
        app, ["eval", "text", "--pred", str(broken), "--ref", str(ref), "--metrics", "rouge"]
    )
    assert result.exit_code == 2 and "broken.jsonl:2" in result.output

    result = runner.invoke(
        app, ["eval", "text", "--pred", str(pred), "--ref", str(ref), "--metrics", "bleu"]
    )
    assert result.exit_code == 2 and "unknown metric" in result.output
