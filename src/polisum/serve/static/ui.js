// What every part of the page shares: element lookup and the error banner.

import { ApiError } from "./api.js";
import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

export function showError(error) {
  if (error?.name === "AbortError") return;
  const box = $("alert");
  if (error instanceof ApiError) {
    const { title, detail } = error.problem;
    box.textContent = detail && title && detail !== title ? `${title}: ${detail}` : error.message;
  } else if (error instanceof TypeError) {
    box.textContent = t("error.network");
  } else {
    box.textContent = String(error?.message ?? error);
  }
  box.hidden = false;
}

export function clearError() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}
