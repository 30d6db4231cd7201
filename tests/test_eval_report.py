"""Saved runs and `polisum eval report`: files are produced, PNGs open, mismatched settings are
refused with the differing setting named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("rouge_score", reason="needs the eval extra")
pytest.importorskip("matplotlib", reason="needs the eval extra")

from polisum.cli import app
from polisum.eval import (
    EvalRun,
    SettingsMismatchError,
    TextEvaluator,
    TextMetricSettings,
    check_comparable,
)
from polisum.eval.report import recall_curve, write_report

runner = CliRunner()
REFS = [
    "서울시는 청년에게 월세를 지원한다.",
    "교통비의 20퍼센트를 돌려준다.",
    "도서관은 아홉 시에 문을 연다.",
    "태양광 패널을 학교 지붕에 설치한다.",
    "신청은 온라인으로 할 수 있다.",
]
GOOD = ["서울시는 청년 월세를 지원한다.", "교통비 20퍼센트를 돌려준다.", "도서관은 아홉 시에 연다.",
        "태양광 패널을 지붕에 설치한다.", "신청은 온라인으로 한다."]  # fmt: skip
BAD = ["청년", "교통", "아홉 시", "학교", "온라인"]


def _run(preds: list[str], name: str, lang: str = "ko") -> EvalRun:
    settings = TextMetricSettings(metrics=("rouge",), lang=lang)
    return TextEvaluator(settings).evaluate(preds, REFS).to_run(name, pred=f"{name}.jsonl")


def _check_png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        img.verify()  # a truncated or corrupt PNG raises here
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 100


def test_run_roundtrip_and_report_files(tmp_path: Path):
    good, bad = _run(GOOD, "good"), _run(BAD, "bad")
    good.save(tmp_path / "good")
    bad.save(tmp_path / "bad")
    loaded = EvalRun.load(tmp_path / "good")
    assert loaded.fingerprint == good.fingerprint
    assert loaded.metrics["rouge1"] == good.metrics["rouge1"]
    assert [i["id"] for i in loaded.items] == [i["id"] for i in good.items]

    result = runner.invoke(
        app,
        ["eval", "report", str(tmp_path / "good"), str(tmp_path / "bad"),
         "--out", str(tmp_path / "rep"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)
    md = Path(files["markdown"]).read_text("utf-8")
    html = Path(files["html"]).read_text("utf-8")
    assert {Path(p).name for p in files["images"]} == {"metrics.png", "histograms.png"}
    for png in files["images"]:
        _check_png(Path(png))
    # both runs, each ROUGE type, the CI, the settings fingerprint and the paired difference
    assert "| good | text | 5 |" in md and "| bad | text | 5 |" in md
    r1 = good.metrics["rouge1"]
    assert f"| ROUGE-1 | {r1.mean:.3f} [{r1.low:.3f}, {r1.high:.3f}]" in md
    assert good.fingerprint in md
    assert "bad − good" in md and " *" in md  # BAD is worse on every item: CI excludes 0
    assert "<table>" in html and 'src="metrics.png"' in html and "ROUGE-Lsum" in html


def test_runs_with_different_settings_are_refused(tmp_path: Path):
    ko, en = _run(GOOD, "ko"), _run(GOOD, "en", lang="en")
    with pytest.raises(SettingsMismatchError) as info:
        check_comparable([ko, en])
    message = str(info.value)
    assert "lang" in message and "rouge.tokenizer" in message and "'ko'" in message
    with pytest.raises(SettingsMismatchError):
        write_report([ko, en], tmp_path / "rep")
    assert not (tmp_path / "rep" / "report.md").exists()

    ko.save(tmp_path / "ko")
    en.save(tmp_path / "en")
    result = runner.invoke(
        app, ["eval", "report", str(tmp_path / "ko"), str(tmp_path / "en"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "different metric settings" in result.output

    # a hand-edited setting with a stale fingerprint is caught too
    run = json.loads((tmp_path / "en" / "run.json").read_text("utf-8"))
    run["settings"] = ko.settings
    (tmp_path / "en" / "run.json").write_text(json.dumps(run), "utf-8")
    with pytest.raises(SettingsMismatchError, match="fingerprint"):
        check_comparable([ko, EvalRun.load(tmp_path / "en")])

    not_a_run = runner.invoke(app, ["eval", "report", str(tmp_path / "nothing")])
    assert not_a_run.exit_code == 2 and "not an eval run" in not_a_run.output


def test_answer_runs_get_a_recall_curve(tmp_path: Path):
    from polisum.eval.stats import bootstrap_ci

    settings = {"lang": "ko", "answers": {"retrieval_k": 5}}
    ranks = [1, 2, None, 1, 5]
    items = [{"id": str(i), "gold_rank": r, "span_hit": float(r == 1)} for i, r in enumerate(ranks)]
    metrics = {"span_hit": bootstrap_ci([it["span_hit"] for it in items])}
    run = EvalRun("answers", "extractive", settings, "f" * 16, metrics, items)
    ks, values = recall_curve(run)
    assert list(ks) == [1, 2, 3, 4, 5]
    assert list(values) == pytest.approx([0.4, 0.6, 0.6, 0.6, 0.8])
    files = write_report([run], tmp_path / "rep")
    names = {p.name for p in files.images}
    assert "recall_at_k.png" in names
    for png in files.images:
        _check_png(png)
    assert "recall_at_k.png" in files.markdown.read_text("utf-8")
