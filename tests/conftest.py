from __future__ import annotations

from pathlib import Path

import pytest

KO_RENT = (
    "서울시는 만 19세부터 34세까지의 무주택 청년에게 월 최대 20만 원의 월세를 최대 12개월 동안 "
    "지원한다. 신청은 서울주거포털에서 온라인으로 할 수 있으며, 소득 기준을 충족해야 한다."
)
KO_BUS = (
    "청년 교통비 지원 사업은 대중교통 이용 금액의 20퍼센트를 연간 최대 10만 원까지 돌려준다. "
    "지원 대상은 서울에 거주하는 만 19세에서 24세 청년이다."
)
EN_SOLAR = (
    "The municipal solar program installs rooftop panels on public schools. Each installation "
    "produces about forty megawatt hours per year and lowers the electricity bill of the school."
)
EN_LIBRARY = (
    "City libraries open at nine in the morning and close at eight in the evening. Members can "
    "borrow up to ten books for three weeks, and renew them online twice."
)


@pytest.fixture(autouse=True)
def user_config(tmp_path_factory, monkeypatch) -> Path:
    """Every test runs with an empty user config folder of its own (trusted files, config.toml):
    the developer's own settings never leak into a test."""
    folder = tmp_path_factory.mktemp("user-config")
    monkeypatch.setenv("POLISUM_CONFIG_DIR", str(folder))
    for var in (
        "POLISUM_INDEX",
        "POLISUM_EMBEDDER",
        "POLISUM_SUMMARIZER",
        "POLISUM_GENERATOR",
        "POLISUM_BACKEND",
        "POLISUM_MILVUS_URI",
        "POLISUM_MILVUS_COLLECTION",
        "POLISUM_MILVUS_TOKEN",
        "POLISUM_MILVUS_USER",
        "POLISUM_MILVUS_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    return folder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "youth.md").write_text(
        f"# 청년 정책\n\n## 월세 지원\n\n{KO_RENT}\n\n## 교통비\n\n{KO_BUS}\n", encoding="utf-8"
    )
    (folder / "city.txt").write_text(f"{EN_SOLAR}\n\n{EN_LIBRARY}\n", encoding="utf-8")
    return folder


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".polisum"
