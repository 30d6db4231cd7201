// UI strings in English and Korean. Elements carry data-i18n (text), data-i18n-placeholder and
// data-i18n-aria-label; code calls t(key, {name: value}). Document text is never translated.

const STRINGS = {
  en: {
    skip: "Skip to content",
    sections: "Sections",
    language: "Language",
    close: "Close",
    "tab.search": "Search",
    "tab.ask": "Ask",
    "tab.documents": "Documents",
    "search.label": "Search the documents",
    "search.placeholder": "Search the documents",
    "search.submit": "Search",
    "search.filters": "Filters",
    "search.source": "Source starts with",
    "search.type": "File type",
    "search.anytype": "Any",
    "search.k": "Results",
    "search.busy": "Searching…",
    "search.count": "{n} results",
    "search.none": "Nothing matched.",
    "hit.summary": "Summary",
    "hit.page": "p. {n}",
    "hit.open": "Open page {n}",
    "hit.score": "score {s}",
    "ask.label": "Your question",
    "ask.placeholder": "Ask a question about the documents",
    "ask.submit": "Ask",
    "ask.stop": "Stop",
    "ask.sources": "Sources",
    "ask.busy": "Answering…",
    "ask.cite": "Open source {n}",
    "ask.stopped": "Stopped.",
    "flag.low_confidence": "No passage was relevant enough, so nothing was generated.",
    "flag.extractive": "Quoted from the passages (no language model is configured).",
    "flag.no_valid_citation": "The answer cites no passage: check it against the sources.",
    "flag.invalid_citation": "Some citations name no passage and were left as text.",
    "flag.truncated_context": "Some passages were shortened to fit the model.",
    "flag.truncated_answer": "The answer was cut at its length limit.",
    "flag.language_mismatch": "The answer is not in the language of the question.",
    "docs.drop": "Drop files here",
    "docs.choose": "Choose files",
    "docs.source": "Document",
    "docs.status": "Status",
    "docs.chunks": "Passages",
    "docs.actions": "Actions",
    "docs.delete": "Delete",
    "docs.delete.label": "Delete {name}",
    "docs.confirm": "Delete “{name}” from the index?",
    "docs.empty": "No documents yet. Upload some above.",
    "docs.count": "{n} documents",
    "docs.deleted": "Deleted {name}.",
    "status.ok": "Indexed",
    "status.failed": "Failed",
    "job.upload": "Uploading {name}",
    "job.delete": "Deleting {name}",
    "job.queued": "Waiting",
    "job.running": "Working",
    "job.done": "Done",
    "job.failed": "Failed",
    "job.ahead": "{n} ahead",
    "stage.scan": "Finding files",
    "stage.parse": "Reading",
    "stage.summarize": "Summarizing",
    "stage.embed": "Embedding",
    "stage.terms": "Indexing words",
    "stage.publish": "Publishing",
    "key.button": "API key",
    "key.title": "API key",
    "key.help": "This server needs a key. It is kept in this browser tab only.",
    "key.label": "Key",
    "key.rejected": "The server did not accept that key.",
    "key.save": "Save",
    "key.clear": "Forget",
    "footer.status": "{documents} documents · {chunks} passages · {embedder}",
    "error.network": "The server did not answer. Is polisum serve running?",
  },
  ko: {
    skip: "본문으로 건너뛰기",
    sections: "메뉴",
    language: "언어",
    close: "닫기",
    "tab.search": "검색",
    "tab.ask": "질문",
    "tab.documents": "문서",
    "search.label": "문서 검색",
    "search.placeholder": "문서에서 검색",
    "search.submit": "검색",
    "search.filters": "필터",
    "search.source": "경로 시작",
    "search.type": "파일 형식",
    "search.anytype": "전체",
    "search.k": "결과 수",
    "search.busy": "검색 중…",
    "search.count": "결과 {n}건",
    "search.none": "일치하는 결과가 없습니다.",
    "hit.summary": "요약",
    "hit.page": "{n}쪽",
    "hit.open": "{n}쪽 보기",
    "hit.score": "점수 {s}",
    "ask.label": "질문",
    "ask.placeholder": "문서에 대해 질문하세요",
    "ask.submit": "질문하기",
    "ask.stop": "중지",
    "ask.sources": "출처",
    "ask.busy": "답변 작성 중…",
    "ask.cite": "출처 {n} 열기",
    "ask.stopped": "중지했습니다.",
    "flag.low_confidence": "관련성이 충분한 구절이 없어 답변을 생성하지 않았습니다.",
    "flag.extractive": "구절에서 인용한 답변입니다 (언어 모델 미설정).",
    "flag.no_valid_citation": "답변에 출처 인용이 없습니다. 출처와 대조해 확인하세요.",
    "flag.invalid_citation": "없는 구절을 가리키는 인용은 텍스트로 남겼습니다.",
    "flag.truncated_context": "모델에 맞추느라 일부 구절을 줄였습니다.",
    "flag.truncated_answer": "답변이 길이 제한에서 잘렸습니다.",
    "flag.language_mismatch": "답변이 질문과 다른 언어로 작성되었습니다.",
    "docs.drop": "여기에 파일을 끌어 놓으세요",
    "docs.choose": "파일 선택",
    "docs.source": "문서",
    "docs.status": "상태",
    "docs.chunks": "구절",
    "docs.actions": "작업",
    "docs.delete": "삭제",
    "docs.delete.label": "{name} 삭제",
    "docs.confirm": "“{name}” 문서를 색인에서 삭제할까요?",
    "docs.empty": "아직 문서가 없습니다. 위에서 올려 주세요.",
    "docs.count": "문서 {n}개",
    "docs.deleted": "{name} 문서를 삭제했습니다.",
    "status.ok": "색인됨",
    "status.failed": "실패",
    "job.upload": "{name} 올리는 중",
    "job.delete": "{name} 삭제 중",
    "job.queued": "대기 중",
    "job.running": "처리 중",
    "job.done": "완료",
    "job.failed": "실패",
    "job.ahead": "앞에 {n}개",
    "stage.scan": "파일 찾기",
    "stage.parse": "읽기",
    "stage.summarize": "요약",
    "stage.embed": "임베딩",
    "stage.terms": "단어 색인",
    "stage.publish": "게시",
    "key.button": "API 키",
    "key.title": "API 키",
    "key.help": "이 서버는 키가 필요합니다. 키는 이 브라우저 탭에만 보관됩니다.",
    "key.label": "키",
    "key.rejected": "서버가 그 키를 받지 않았습니다.",
    "key.save": "저장",
    "key.clear": "지우기",
    "footer.status": "문서 {documents}개 · 구절 {chunks}개 · {embedder}",
    "error.network": "서버가 응답하지 않습니다. polisum serve가 실행 중인가요?",
  },
};

const STORE = "polisum.lang";
let lang = pickLanguage();

function pickLanguage() {
  const saved = localStorage.getItem(STORE);
  if (saved && saved in STRINGS) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("ko") ? "ko" : "en";
}

export function language() {
  return lang;
}

export function setLanguage(next) {
  lang = next in STRINGS ? next : "en";
  localStorage.setItem(STORE, lang);
  applyStrings(document);
}

/** The string for key in the current language (English, then the key, as fallbacks). */
export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** Whether a string exists for key (used for optional labels such as stage names). */
export function has(key) {
  return key in STRINGS.en;
}

export function applyStrings(root) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}
