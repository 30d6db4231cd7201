from __future__ import annotations

from polisum.summarize import ExtractiveSummarizer, load_summarizer


def test_short_paragraph_is_its_own_summary():
    s = ExtractiveSummarizer(max_chars=200)
    assert s.summarize(["짧은 문단이다."]) == ["짧은 문단이다."]


def test_picks_central_sentences_in_source_order_within_the_cap():
    text = (
        "서울시는 청년 월세 지원 사업을 시작한다. "
        "날씨가 맑아서 한강 공원에 사람이 많았다. "
        "청년 월세 지원 사업은 무주택 청년에게 월세를 지원한다. "
        "고양이는 상자를 좋아한다. "
        "월세 지원 신청은 청년 주거 포털에서 받는다."
    )
    s = ExtractiveSummarizer(max_chars=90, max_sentences=2, lead_bonus=0.0)
    summary = s.summarize_one(text)
    assert len(summary) <= 90
    assert "고양이" not in summary and "한강" not in summary
    assert "월세" in summary
    # chosen sentences appear in their original order
    parts = [p for p in summary.split(". ") if p]
    positions = [text.index(p.rstrip(".")) for p in parts]
    assert positions == sorted(positions)


def test_english_and_single_long_sentence_are_capped():
    s = ExtractiveSummarizer(max_chars=80)
    long_sentence = "word " * 100
    out = s.summarize_one(long_sentence)
    assert len(out) <= 80 and out.endswith("…")


def test_specs():
    assert load_summarizer("none") is None
    assert isinstance(load_summarizer("extractive"), ExtractiveSummarizer)


def test_batched_summaries_equal_one_at_a_time():
    from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT

    more = KO_RENT.replace("20만", "30만")
    long_ko = " ".join([KO_RENT, KO_BUS, "청년 정책은 해마다 바뀐다.", more])
    long_en = " ".join([EN_SOLAR, EN_LIBRARY, EN_SOLAR.replace("forty", "fifty")])
    one_long_sentence = "가" * 400
    texts = [KO_RENT, long_ko, "", long_en, one_long_sentence, "  짧은 문단.  "]
    s = ExtractiveSummarizer(max_chars=200)
    batched = s.summarize(texts)
    assert batched == [s.summarize_one(t) for t in texts]
    assert batched[1] != long_ko.strip() and len(batched[1]) <= 200  # really summarized
    assert batched[4].endswith("…") and batched[5] == "짧은 문단."
