// The bookmark manager's page: lists, adds, searches, tags and deletes bookmarks through the
// JSON API of the server that served it. Plain JavaScript, no build step.
"use strict";

// Where the API is: another origin when the page is served apart from it (`data-api-base`).
const API_BASE = (document.currentScript && document.currentScript.dataset.apiBase) || "";
// How long a call may take before the page gives up (`data-timeout-ms`).
const TIMEOUT_MS = Number((document.currentScript && document.currentScript.dataset.timeoutMs) || 8000);
// The API's token, when it has one (`data-api-token`).
const API_TOKEN = (document.currentScript && document.currentScript.dataset.apiToken) || "";

const api = {
  async call(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (API_TOKEN) {
      init.headers.Authorization = `Bearer ${API_TOKEN}`;
    }
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    init.signal = controller.signal;
    let response;
    try {
      response = await fetch(API_BASE + path, init);
    } finally {
      clearTimeout(timer);
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = (data && data.error && data.error.message) || `${method} ${path} failed with ${response.status}`;
      throw new Error(message);
    }
    return data;
  },
  list(q, tag) {
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (tag) params.set("tag", tag);
    params.set("limit", "100");
    return this.call("GET", `/api/bookmarks?${params}`);
  },
  create(bookmark) { return this.call("POST", "/api/bookmarks", bookmark); },
  setTags(id, tags) { return this.call("PUT", `/api/bookmarks/${encodeURIComponent(id)}/tags`, { tags }); },
  remove(id) { return this.call("DELETE", `/api/bookmarks/${encodeURIComponent(id)}`); },
};

const $ = (id) => document.getElementById(id);
const knownTags = new Set();

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function parseTags(text) {
  return text.split(",").map((t) => t.trim()).filter((t) => t.length > 0);
}

function render(bookmarks) {
  const list = $("list");
  list.replaceChildren();
  for (const b of bookmarks) {
    const item = document.createElement("li");
    item.dataset.id = b.id;
    const link = document.createElement("a");
    link.href = b.url;
    link.textContent = b.title || b.url;
    link.rel = "noopener noreferrer";
    item.append(link);
    for (const tag of b.tags) {
      knownTags.add(tag);
      const chip = document.createElement("span");
      chip.className = "tag";
      chip.textContent = tag;
      item.append(chip);
    }
    const edit = document.createElement("button");
    edit.textContent = "Tags…";
    edit.className = "edit-tags";
    edit.addEventListener("click", () => editTags(b));
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "delete";
    del.addEventListener("click", () => removeBookmark(b));
    const url = document.createElement("span");
    url.className = "url";
    url.textContent = b.url;
    item.append(edit, del, url);
    list.append(item);
  }
  const filter = $("tag-filter");
  const chosen = filter.value;
  filter.replaceChildren(new Option("all tags", ""));
  for (const tag of [...knownTags].sort()) filter.append(new Option(tag, tag));
  filter.value = chosen;
}

// When the list cannot be loaded at all (no answer), the page tries again a few times, further
// apart each time, as users would by reloading.
const RETRIES = 5;
let retryTimer;

async function refresh(attempt = 0) {
  clearTimeout(retryTimer);
  try {
    const data = await api.list($("q").value.trim(), $("tag-filter").value);
    render(data.bookmarks);
    if (attempt > 0 || !$("status").classList.contains("error")) say(`${data.bookmarks.length} bookmarks`);
  } catch (err) {
    const unreachable = err instanceof TypeError;
    if (unreachable && attempt < RETRIES) {
      say(`Could not reach the server; trying again (${attempt + 1} of ${RETRIES})`, true);
      retryTimer = setTimeout(() => refresh(attempt + 1), 300 * 2 ** attempt);
    } else {
      say(`Could not load bookmarks: ${err.message}`, true);
    }
  }
}

async function addBookmark(event) {
  event.preventDefault();
  const bookmark = { url: $("url").value.trim(), tags: parseTags($("tags").value) };
  const title = $("title").value.trim();
  if (title) bookmark.title = title;
  try {
    await api.create(bookmark);
    $("add").reset();
    say("Saved");
    await refresh();
  } catch (err) {
    say(`Could not save: ${err.message}`, true);
  }
}

async function editTags(bookmark) {
  const answer = window.prompt("Tags, comma separated", bookmark.tags.join(", "));
  if (answer === null) return;
  try {
    await api.setTags(bookmark.id, parseTags(answer));
    say("Tags saved");
    await refresh();
  } catch (err) {
    say(`Could not save the tags: ${err.message}`, true);
  }
}

async function removeBookmark(bookmark) {
  try {
    await api.remove(bookmark.id);
    say("Deleted");
    await refresh();
  } catch (err) {
    say(`Could not delete: ${err.message}`, true);
  }
}

let searchTimer;
$("add").addEventListener("submit", addBookmark);
$("search").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
$("q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => refresh(), 200); });
$("tag-filter").addEventListener("change", () => refresh());
refresh();
