// Building page content from document data. Document text only ever becomes text nodes
// (textContent, append(string)): a passage holding "<script>" shows those characters.

import { has, t } from "./i18n.js";

/** document.createElement with a class and text (text is set as textContent). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Korean particles and endings left off a query word so "지원금은" also marks "지원금".
const PARTICLES =
  /(에서는|에게서|으로는|까지|부터|에서|에게|으로|이다|입니다|은|는|이|가|을|를|의|에|로|와|과|도|만)$/u;
const STOPWORDS = new Set(
  (
    "the a an of and or to in on at for by with is are was were be it its this that what which " +
    "who whom how when where why do does did can could should would will from as about"
  ).split(" "),
);
const HANGUL = /[\uac00-\ud7a3]/u;

/** The words of a query worth marking in a passage, longest first. */
export function queryTerms(query, extra = []) {
  const terms = new Set();
  for (const raw of [...query.toLowerCase().split(/[^\p{L}\p{N}]+/u), ...extra]) {
    const word = String(raw).toLowerCase();
    if (HANGUL.test(word)) {
      const stem = word.replace(PARTICLES, "");
      if (stem.length >= 2) terms.add(stem);
      else if (word.length >= 2) terms.add(word);
    } else if ((word.length >= 3 || /\d/.test(word)) && !STOPWORDS.has(word)) {
      terms.add(word);
    }
  }
  return [...terms].sort((a, b) => b.length - a.length);
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** text as a fragment of text nodes and <mark> elements around the terms. */
export function highlighted(text, terms) {
  const fragment = document.createDocumentFragment();
  if (!terms.length) {
    fragment.append(text);
    return fragment;
  }
  // Latin words match from a word start ("panel" marks "panels"); Hangul anywhere (no spaces
  // between a noun and its particle).
  const pattern = terms
    .map((term) => (HANGUL.test(term) ? escapeRegExp(term) : `\\b${escapeRegExp(term)}`))
    .join("|");
  let last = 0;
  for (const match of text.matchAll(new RegExp(pattern, "giu"))) {
    if (!match[0]) continue;
    fragment.append(text.slice(last, match.index), el("mark", "", match[0]));
    last = match.index + match[0].length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

/** "source · p. 3 · section" for a hit, passage or citation. */
export function where(item) {
  const parts = [item.source];
  if (item.page) parts.push(t("hit.page", { n: item.page }));
  if (item.section) parts.push(item.section);
  return parts.join(" · ");
}

export const isPDF = (source) => /\.pdf$/i.test(source || "");

/**
 * Answer text with each valid [n] as a button calling open(n). Markers naming no passage
 * stay as text (the answerer flags them).
 */
export function citedText(text, count, open) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const number = Number(match[1]);
    if (number < 1 || number > count) continue;
    fragment.append(text.slice(last, match.index));
    const button = el("button", "cite", `[${number}]`);
    button.type = "button";
    button.setAttribute("aria-label", t("ask.cite", { n: number }));
    button.addEventListener("click", () => open(number));
    fragment.append(button);
    last = match.index + match[0].length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

/** A <progress> for one stage of a job: "Embedding 3 / 5". */
export function stageBar(stage) {
  const item = el("div", "stage");
  const key = `stage.${stage.stage}`;
  const label = el("span", "", has(key) ? t(key) : stage.stage);
  const bar = el("progress");
  if (stage.total) {
    bar.max = stage.total;
    bar.value = Math.min(stage.done, stage.total);
    label.append(` ${stage.done} / ${stage.total}`);
  }
  bar.setAttribute("aria-label", label.textContent);
  item.append(label, bar);
  return item;
}
