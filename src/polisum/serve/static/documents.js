// The Documents tab: the table (status, failure reason), uploads (drop or pick), deletes, and
// the progress of the jobs they start.

import { getJSON, listOf } from "./api.js";
import { has, t } from "./i18n.js";
import { el, stageBar } from "./render.js";
import { $, clearError, showError } from "./ui.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const FINISHED = new Set(["done", "failed", "error", "cancelled", "succeeded"]);
let documents = [];

/** Reads the list again; the page hears "documents-changed" (the footer's counts follow). */
export async function loadDocuments() {
  try {
    documents = listOf(await getJSON("/v1/documents"), "documents");
    drawDocuments();
    window.dispatchEvent(new Event("documents-changed"));
  } catch (error) {
    showError(error);
  }
}

export async function documentIdOf(source) {
  let doc = documents.find((d) => d.source === source);
  if (!doc) {
    await loadDocuments();
    doc = documents.find((d) => d.source === source);
  }
  return doc?.id;
}

export function drawDocuments() {
  const docs = documents;
  $("docs-status").textContent = docs.length
    ? t("docs.count", { n: docs.length })
    : t("docs.empty");
  $("docs").replaceChildren(...docs.map(documentRow));
}

function documentRow(doc) {
  const row = el("tr");
  row.dataset.source = doc.source;
  const name = el("td", "doc");
  name.append(el("span", "source", doc.source));
  if (doc.error) name.append(el("p", "reason", doc.error));
  const status = el("td");
  const kind = doc.status === "ok" ? "ok" : doc.status === "failed" ? "bad" : "";
  status.append(
    el(
      "span",
      `badge ${kind}`,
      has(`status.${doc.status}`) ? t(`status.${doc.status}`) : doc.status,
    ),
  );
  const chunks = el("td", "num", doc.chunks ?? doc.n_chunks ?? "");
  const actions = el("td", "actions admin");
  const remove = el("button", "danger small", t("docs.delete"));
  remove.type = "button";
  remove.setAttribute("aria-label", t("docs.delete.label", { name: doc.source }));
  remove.addEventListener("click", () => deleteDocument(doc));
  actions.append(remove);
  row.append(name, status, chunks, actions);
  return row;
}

async function deleteDocument(doc) {
  if (!window.confirm(t("docs.confirm", { name: doc.source }))) return;
  clearError();
  let said = null;
  try {
    const path = `/v1/documents/${encodeURIComponent(doc.id)}`;
    const job = jobIdOf(await getJSON(path, { method: "DELETE" }));
    const done = job ? await watchJob(job, jobItem(t("job.delete", { name: doc.source }))) : null;
    if (!done || done.state === "done") said = t("docs.deleted", { name: doc.source });
  } catch (error) {
    showError(error);
  }
  await loadDocuments();
  if (said) $("docs-status").textContent = said; // announced: the status line is aria-live
}

async function upload(files) {
  if (!files.length) return;
  clearError();
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const item = jobItem(t("job.upload", { name: files.map((f) => f.name).join(", ") }));
  try {
    const reply = await getJSON("/v1/documents", { method: "POST", body: form });
    const job = jobIdOf(reply);
    if (job) await watchJob(job, item);
    else finishJob(item, { state: "done" });
  } catch (error) {
    finishJob(item, { state: "failed", error: error.message });
    showError(error);
  }
  await loadDocuments();
}

const jobIdOf = (reply) => reply?.job?.id ?? reply?.job_id ?? null;

function jobItem(title) {
  const item = el("li", "job");
  item.append(el("strong", "", title), el("span", "state", t("job.queued")));
  item.append(el("div", "stages"), el("ul", "problems"));
  $("jobs").prepend(item);
  return item;
}

async function watchJob(id, item) {
  for (let delay = 250; ; delay = Math.min(delay * 1.5, 2000)) {
    const job = await getJSON(`/v1/jobs/${encodeURIComponent(id)}`);
    const state = job.state ?? job.status;
    drawJob(item, job, state);
    if (FINISHED.has(state)) return finishJob(item, { ...job, state });
    await sleep(delay);
  }
}

function drawJob(item, job, state) {
  const label = has(`job.${state}`) ? t(`job.${state}`) : state;
  const ahead = job.position > 0 ? ` (${t("job.ahead", { n: job.position })})` : "";
  item.querySelector(".state").textContent = label + ahead;
  const stages = Array.isArray(job.stages)
    ? job.stages
    : Object.entries(job.stages ?? job.progress ?? {}).map(([stage, s]) => ({ stage, ...s }));
  item.querySelector(".stages").replaceChildren(...stages.map(stageBar));
  const files = job.files ?? job.report?.files ?? [];
  item
    .querySelector(".problems")
    .replaceChildren(
      ...files
        .filter((f) => f.error)
        .map((f) => el("li", "reason", `${f.name ?? f.source}: ${f.error}`)),
    );
}

function finishJob(item, job) {
  const failed = job.state !== "done" && job.state !== "succeeded";
  if (job.error) item.querySelector(".problems").append(el("li", "reason", job.error));
  // Done, but some file could not be read: kept in view with its reasons, marked "partial".
  const partial = !failed && item.querySelector(".problems li") !== null;
  item.classList.add(failed ? "failed" : partial ? "partial" : "done");
  item.querySelector(".state").textContent = t(failed ? "job.failed" : "job.done");
  if (!failed && !partial) setTimeout(() => item.remove(), 5000);
  return job;
}

export function wireDocuments() {
  const zone = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    upload([...(e.dataTransfer?.files ?? [])]);
  });
  // A file dropped beside the zone must not make the browser navigate away to it.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("file").addEventListener("change", (e) => {
    upload([...e.target.files]);
    e.target.value = "";
  });
}
