// polisum's web page: Search, Ask (streamed, cited) and Documents over the /v1 API.
// No framework and no build step; every piece of document data is inserted as text (render.js).

import {
  ApiError,
  events,
  getJSON,
  getKey,
  imageURL,
  listOf,
  onUnauthorized,
  request,
  setKey,
} from "./api.js";
import { documentIdOf, drawDocuments, loadDocuments, wireDocuments } from "./documents.js";
import { applyStrings, has, language, setLanguage, t } from "./i18n.js";
import { citedText, el, highlighted, isPDF, queryTerms, where } from "./render.js";
import { $, clearError, showError } from "./ui.js";

const view = { search: null, answer: null }; // re-drawn on a language switch

// -- tabs: #search, #ask, #documents ------------------------------------------------------------
const TABS = ["search", "ask", "documents"];
let currentTab = null;

function showTab() {
  const wanted = location.hash.slice(1);
  if (!TABS.includes(wanted) && currentTab) return; // e.g. the skip link's #main
  currentTab = TABS.includes(wanted) ? wanted : "search";
  for (const panel of document.querySelectorAll("[data-panel]")) {
    panel.hidden = panel.dataset.panel !== currentTab;
  }
  for (const link of document.querySelectorAll("[data-tab]")) {
    if (link.dataset.tab === currentTab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (currentTab === "documents") loadDocuments();
}

// -- API key --------------------------------------------------------------------------------
let keyPrompt = null;

/** Asks for the key; ``rejected``: the key sent was refused (401), so it is not shown again. */
function promptKey(rejected = false) {
  keyPrompt ??= new Promise((resolve) => {
    const dialog = $("key-dialog");
    $("key-rejected").hidden = !rejected;
    $("key-input").value = rejected ? "" : getKey();
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "save") setKey($("key-input").value.trim());
        keyPrompt = null;
        resolve(dialog.returnValue === "save" && Boolean(getKey()));
      },
      { once: true },
    );
    dialog.showModal();
  });
  return keyPrompt;
}

// -- Search ---------------------------------------------------------------------------------
async function search(event) {
  event.preventDefault();
  clearError();
  const query = $("q").value.trim();
  if (!query) return;
  const filters = {};
  if ($("f-source").value.trim()) filters.source_prefix = $("f-source").value.trim();
  if ($("f-type").value) filters.file_types = [$("f-type").value];
  const k = Math.max(1, Math.min(Number($("f-k").max) || 50, Number($("f-k").value) || 10));
  $("search-status").textContent = t("search.busy");
  try {
    const reply = await getJSON("/v1/search", { method: "POST", json: { query, k, filters } });
    view.search = { hits: listOf(reply, "hits"), terms: queryTerms(query, reply?.terms ?? []) };
    drawSearch();
  } catch (error) {
    $("search-status").textContent = "";
    showError(error);
  }
}

function drawSearch() {
  if (!view.search) return;
  const { hits, terms } = view.search;
  $("search-status").textContent = hits.length
    ? t("search.count", { n: hits.length })
    : t("search.none");
  $("results").replaceChildren(...hits.map((hit) => hitItem(hit, terms)));
}

function hitItem(hit, terms) {
  const item = el("li", "hit");
  const head = el("div", "hit-head");
  head.append(el("span", "source", hit.source));
  if (hit.page) head.append(el("span", "chip", t("hit.page", { n: hit.page })));
  if (hit.section) head.append(el("span", "chip section", hit.section));
  if (typeof hit.score === "number") {
    head.append(el("span", "score", t("hit.score", { s: hit.score.toFixed(3) })));
  }
  item.append(head);
  if (hit.summary) {
    const summary = el("p", "summary");
    summary.append(el("strong", "", `${t("hit.summary")}: `), highlighted(hit.summary, terms));
    item.append(summary);
  }
  const passage = el("p", "passage");
  passage.append(highlighted(hit.text ?? "", terms));
  item.append(passage);
  if (isPDF(hit.source) && hit.page) {
    const open = el("button", "quiet small", t("hit.open", { n: hit.page }));
    open.type = "button";
    open.addEventListener("click", () => openPassage(hit, null, terms));
    item.append(open);
  }
  return item;
}

// -- Ask: the answer streams in as text; [n] become buttons once it is complete --------------
let asking = null;

async function ask(event) {
  event.preventDefault();
  clearError();
  const question = $("question").value.trim();
  if (!question) return;
  asking?.abort();
  const controller = (asking = new AbortController());
  const box = $("answer-text");
  box.textContent = "";
  box.dataset.placeholder = t("ask.busy");
  box.setAttribute("aria-busy", "true");
  $("answer").hidden = false;
  $("answer-flags").replaceChildren();
  drawSources([], []);
  $("ask-submit").disabled = true;
  $("ask-stop").hidden = false;
  let answer = null;
  try {
    const res = await request("/v1/answer", {
      method: "POST",
      json: { question, stream: true },
      accept: "text/event-stream",
      signal: controller.signal,
    });
    if ((res.headers.get("content-type") || "").includes("text/event-stream")) {
      for await (const { type, data } of events(res)) {
        if (type === "token") box.append(typeof data === "string" ? data : (data.text ?? ""));
        else if (type === "passages") drawSources(listOf(data, "passages"), []);
        else if (type === "answer") answer = data;
        else if (type === "error") throw new ApiError(data.status ?? 500, data);
      }
    } else {
      answer = await res.json();
    }
    if (answer) {
      view.answer = answer;
      drawAnswer();
    }
  } catch (error) {
    if (error.name === "AbortError") $("answer-flags").append(el("li", "", t("ask.stopped")));
    else showError(error);
  } finally {
    box.setAttribute("aria-busy", "false");
    if (asking === controller) {
      asking = null;
      $("ask-submit").disabled = false;
      $("ask-stop").hidden = true;
    }
  }
}

function drawAnswer() {
  const answer = view.answer;
  if (!answer) return;
  const passages = listOf(answer.passages, "passages");
  const terms = queryTerms(answer.query ?? answer.question ?? "");
  const open = (n) => openPassage(passages[n - 1], n, terms);
  $("answer-text").replaceChildren(citedText(answer.text ?? "", passages.length, open));
  $("answer-flags").replaceChildren(
    ...(answer.flags ?? []).map((flag) =>
      el("li", "", has(`flag.${flag}`) ? t(`flag.${flag}`) : flag),
    ),
  );
  drawSources(answer.refused ? [] : passages, answer.citations ?? [], terms);
}

function drawSources(passages, citations, terms = []) {
  const cited = new Set(citations.map((c) => c.number));
  $("sources-title").hidden = !passages.length;
  $("answer-sources").replaceChildren(
    ...passages.map((passage, i) => {
      const number = passage.number ?? i + 1;
      const item = el("li", cited.has(number) ? "cited" : "");
      const open = el("button", "link", `[${number}] ${where(passage)}`);
      open.type = "button";
      open.addEventListener("click", () => openPassage(passage, number, terms));
      item.append(open);
      return item;
    }),
  );
}

// -- A passage, and for a PDF its rendered page --------------------------------------------
let pageURL = null;
let opening = 0;

async function openPassage(item, number, terms = []) {
  const dialog = $("passage");
  const ticket = ++opening;
  $("passage-title").textContent = number ? `[${number}] ${item.source}` : item.source;
  $("passage-where").textContent = where(item);
  $("passage-summary").hidden = !item.summary;
  $("passage-summary").replaceChildren(
    el("strong", "", `${t("hit.summary")}: `),
    item.summary ?? "",
  );
  $("passage-text").replaceChildren(highlighted(item.text ?? "", terms));
  $("passage-figure").hidden = true;
  $("passage-image").removeAttribute("src");
  if (!dialog.open) dialog.showModal();
  if (!isPDF(item.source) || !item.page) return;
  const caption = $("passage-caption");
  try {
    const id = item.document_id ?? (await documentIdOf(item.source));
    if (id === undefined || id === null) return;
    const url = await imageURL(`/v1/documents/${encodeURIComponent(id)}/pages/${item.page}.png`);
    if (ticket !== opening) return URL.revokeObjectURL(url);
    releasePage();
    pageURL = url;
    const image = $("passage-image");
    image.alt = `${item.source}, ${t("hit.page", { n: item.page })}`;
    image.src = url;
    caption.textContent = t("hit.page", { n: item.page });
  } catch (error) {
    caption.textContent = error.message;
  }
  if (ticket === opening) $("passage-figure").hidden = false;
}

function releasePage() {
  if (pageURL) URL.revokeObjectURL(pageURL);
  pageURL = null;
}

// -- The footer: what the index holds ------------------------------------------------------
async function loadStatus() {
  try {
    // /v1/status is `polisum status --json`: documents is the list, chunks a count.
    const status = await getJSON("/v1/status");
    const service = status.service ?? {};
    // A read key cannot upload or delete: those controls (class "admin") are hidden.
    document.body.dataset.role = service.role ?? "";
    const limits = service.limits ?? {};
    if (limits.max_query_chars) {
      for (const id of ["q", "question"]) $(id).maxLength = limits.max_query_chars;
    }
    if (limits.max_k) $("f-k").max = limits.max_k;
    const docs = status.documents;
    $("footer").textContent = t("footer.status", {
      documents: Array.isArray(docs) ? docs.length : (docs ?? "?"),
      chunks: status.chunks ?? "?",
      embedder: status.embedder ?? "",
    });
  } catch {
    $("footer").textContent = "";
  }
}

// -- start ----------------------------------------------------------------------------------
function start() {
  applyStrings(document);
  $("lang").value = language();
  $("lang").addEventListener("change", (e) => {
    setLanguage(e.target.value);
    drawSearch();
    drawAnswer();
    drawDocuments();
    loadStatus();
  });
  onUnauthorized(promptKey);
  $("key-button").addEventListener("click", async () => {
    if (await promptKey()) showTab();
  });
  $("key-clear").addEventListener("click", () => {
    setKey("");
    $("key-dialog").close("cleared");
  });
  $("search-form").addEventListener("submit", search);
  $("ask-form").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) $("ask-form").requestSubmit();
  });
  $("ask-stop").addEventListener("click", () => asking?.abort());
  $("passage").addEventListener("close", releasePage);
  wireDocuments();
  window.addEventListener("hashchange", showTab);
  window.addEventListener("documents-changed", loadStatus);
  showTab();
  document.body.dataset.ready = "true";
  askForKeyIfRequired().then(loadStatus);
}

/** A server with keys says so in /v1/health (which needs none): ask before the first 401. */
async function askForKeyIfRequired() {
  try {
    const health = await getJSON("/v1/health");
    if (health?.auth && !getKey() && (await promptKey())) showTab();
  } catch {
    // no answer: the next call shows the error
  }
}

start();
