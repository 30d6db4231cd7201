// Calls to polisum's REST API (/v1): the bearer key, RFC 9457 problem details, and SSE over POST.

const KEY = "polisum.key";
let askForKey = null; // (rejected) => Promise<boolean>: set by the page; true: a key was entered

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function onUnauthorized(prompt) {
  askForKey = prompt;
}

async function problemOf(res) {
  let problem = { title: res.statusText };
  try {
    const body = await res.text();
    try {
      problem = JSON.parse(body);
    } catch {
      if (body) problem = { title: res.statusText, detail: body.slice(0, 300) };
    }
  } catch {
    // the body could not be read: keep the status line
  }
  // FastAPI's own errors say {"detail": ...}, where detail may be a list of field errors.
  if (Array.isArray(problem.detail)) {
    problem.detail = problem.detail.map((e) => e.msg || JSON.stringify(e)).join("; ");
  }
  return new ApiError(res.status, problem);
}

/** fetch() with the key; a 401 asks for a key once and retries. Throws ApiError when not ok. */
export async function request(path, { method = "GET", json, body, accept, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers({ Accept: accept || "application/json" });
    const key = getKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    let payload = body;
    if (json !== undefined) {
      headers.set("Content-Type", "application/json");
      payload = JSON.stringify(json);
    }
    const res = await fetch(path, { method, headers, body: payload, signal });
    if (res.status === 401 && attempt === 0 && askForKey && (await askForKey(Boolean(key)))) {
      continue;
    }
    if (!res.ok) throw await problemOf(res);
    return res;
  }
}

export async function getJSON(path, options) {
  const res = await request(path, options);
  return res.status === 204 ? null : res.json();
}

/** An image the API serves (it may need the key, which <img src> cannot send) as a blob: URL. */
export async function imageURL(path, signal) {
  const res = await request(path, { accept: "image/png", signal });
  return URL.createObjectURL(await res.blob());
}

// Server-sent events over POST. EventSource only does GET without headers, so the stream is
// read from fetch() and split into events by hand, following the HTML spec's parsing rules
// (blank line ends an event; "event:", "data:" fields; ":" comments).
export async function* events(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const boundary = /\r\n\r\n|\n\n|\r\r/;
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    for (let m = boundary.exec(buffer); m; m = boundary.exec(buffer)) {
      const event = parseEvent(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
      if (event) yield event;
    }
  }
  const last = parseEvent(buffer);
  if (last) yield last;
}

function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // a plain-text data line (a token sent unquoted)
  }
  return { type, data: parsed };
}

/** A list out of a reply that is either the list or an object holding it under name. */
export function listOf(reply, name) {
  if (Array.isArray(reply)) return reply;
  return (reply && (reply[name] || reply.items)) || [];
}
