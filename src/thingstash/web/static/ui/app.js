// thingstash console: browse folders, view, create, edit, delete and watch things.
// Plain JavaScript, no build step; it uses only the public HTTP API (API.md).
"use strict";

const KEY_STORE = "thingstash-key";
const EVENTS_KEPT = 50;
const $ = (selector, root = document) => root.querySelector(selector);

// -- talking to the server ----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title);
    this.status = status;
    this.title = title;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

// Each segment is percent-encoded: any Unicode is a valid path, "?" and "#" included.
function encodePath(path) {
  return "/" + path.split("/").map(encodeURIComponent).join("/");
}

function authHeaders(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: "Bearer " + key } : { ...headers };
}

async function problemOf(response) {
  try {
    const body = await response.json();
    return new ApiError(response.status, body.title || response.statusText, body.detail);
  } catch {
    return new ApiError(response.status, response.statusText, response.statusText);
  }
}

// One request; a 401 asks for a key and retries once it is given.
async function api(method, path, { body, query, headers } = {}) {
  const url = encodePath(path) + (query ? "?" + new URLSearchParams(query) : "");
  const sent = authHeaders(headers);
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers: sent, body, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network error", "cannot reach the server (" + error.message + ")");
  }
  if (response.status === 401) {
    const problem = await problemOf(response);
    if (await askKey(problem.message)) return api(method, path, { body, query, headers });
    throw problem;
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

// -- the API key dialog ---------------------------------------------------------------------

let keyPrompt = null;

function askKey(reason) {
  if (keyPrompt) return keyPrompt; // one dialog for every request that needs it
  const dialog = $("#key-dialog");
  $("#key-reason").textContent = reason || "Give an API key for this server, or a user's ID token.";
  $("#key-input").value = "";
  keyPrompt = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        keyPrompt = null;
        const value = $("#key-input").value.trim();
        if (dialog.returnValue === "save" && value) {
          sessionStorage.setItem(KEY_STORE, value);
          updateKeyButton();
          resolve(true);
        } else {
          if (dialog.returnValue === "forget") sessionStorage.removeItem(KEY_STORE);
          updateKeyButton();
          resolve(false);
        }
      },
      { once: true },
    );
    dialog.showModal();
    $("#key-input").focus();
  });
  return keyPrompt;
}

function updateKeyButton() {
  $("#key-button").textContent = apiKey() ? "key ✓" : "key";
}

// -- JSON shown exactly as stored ---------------------------------------------------------

// Pretty-prints JSON text without parsing it into JavaScript values, so integers beyond 2^53
// and numbers like 1.0 are shown exactly as the server has them.
const TOKENS = /"(?:[^"\\]|\\.)*"|[{}[\],:]|[^\s{}[\],:"]+/g;

function escapeHTML(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function prettyJSON(text, html) {
  const tokens = text.match(TOKENS) || [];
  const span = (cls, token, extra = "") =>
    html ? `<span class="${cls}"${extra}>${escapeHTML(token)}</span>` : token;
  let out = "";
  let depth = 0;
  let topKey = null;
  const newline = () => "\n" + "  ".repeat(depth);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    const next = tokens[i + 1];
    if (token === "{" || token === "[") {
      if (next === (token === "{" ? "}" : "]")) {
        out += token + next;
        i++;
        continue;
      }
      depth++;
      out += token + newline();
    } else if (token === "}" || token === "]") {
      depth--;
      out += newline() + token;
    } else if (token === ",") {
      out += "," + newline();
    } else if (token === ":") {
      out += ": ";
    } else if (token[0] === '"' && next === ":") {
      if (depth === 1) topKey = token;
      out += span("k", token);
    } else if (token[0] === '"') {
      out += span("s", token);
    } else {
      const isTtl = depth === 1 && topKey === '"ttl"' && tokens[i - 1] === ":";
      out += span(/^[-\d]/.test(token) ? "n" : "l", token, isTtl ? " data-ttl" : "");
    }
  }
  return out;
}

// The server appends the reserved fields to the stored object: take them off for editing.
function withoutReserved(text) {
  return text.replace(/,?"ttl":\d+,"last_updated":\d+\}\s*$/, "}");
}

function checkObject(text) {
  if (!text.trim()) return "write a JSON object, e.g. {\"value\": 1}";
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return "a thing is a JSON object: {...}";
    }
    return null;
  } catch (error) {
    return error.message;
  }
}

// -- messages and the connection indicator ------------------------------------------------

let messageTimer = null;

function showMessage(text, kind = "ok") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
  clearTimeout(messageTimer);
  if (kind === "ok") messageTimer = setTimeout(() => (box.hidden = true), 5000);
}

function clearMessage() {
  $("#message").hidden = true;
}

function setConnection(stateName, text) {
  const conn = $("#conn");
  conn.className = "conn " + stateName;
  conn.dataset.state = stateName;
  $("#conn-text").textContent = text;
}

// -- watching: a fetch-based Server-Sent Events reader -----------------------------------
// EventSource cannot send an Authorization header, so the stream is read with fetch, and a
// dropped connection is resumed with Last-Event-ID so no change is missed.

class Watcher {
  constructor(path, lastEventId, onEvent, query = null) {
    this.path = path;
    this.query = query; // a query's parameters: its answer, live (`query` events)
    this.lastEventId = lastEventId;
    this.onEvent = onEvent;
    this.stopped = false;
    this.delay = 1000;
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    clearTimeout(this.retryTimer);
    setConnection("off", "not watching");
  }

  async run() {
    if (this.stopped) return;
    setConnection("connecting", "connecting…");
    this.controller = new AbortController();
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    try {
      const search = this.query ? "?" + new URLSearchParams(this.query) : "";
      const response = await fetch(encodePath(this.path) + search, {
        headers,
        cache: "no-store",
        signal: this.controller.signal,
      });
      if (response.status === 401) {
        const problem = await problemOf(response);
        if (await askKey(problem.message)) return this.run();
        throw problem;
      }
      if (!response.ok) throw await problemOf(response);
      setConnection("live", "live");
      this.delay = 1000;
      await this.read(response.body.getReader());
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
        setConnection("down", "watch refused");
        showMessage(`cannot watch ${this.path || "/"}: ${error.message}`, "error");
        return;
      }
    }
    if (this.stopped) return;
    setConnection("down", `reconnecting in ${Math.round(this.delay / 1000)} s`);
    this.retryTimer = setTimeout(() => this.run(), this.delay);
    this.delay = Math.min(this.delay * 2, 15000);
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // a comment keeps proxies open
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.delay = Number(value);
    }
    if (id !== null) this.lastEventId = id;
    if (!data.length) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    this.onEvent(event, parsed, id);
  }
}

// -- state and navigation ------------------------------------------------------------------

const state = {
  path: null, // what is shown: "" (top level), "a/b/" (a folder) or "a/b" (a thing)
  watcher: null,
  ttlTimer: null,
  listingPosition: null,
  cursor: null,
  etag: null,
  raw: null,
  flash: null,
};

function currentRoute() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  return hash;
}

// Navigate, then show a message on the new view (a plain showMessage would be cleared by it).
function goAndTell(path, text) {
  state.flash = text;
  go(path);
}

function go(path) {
  const target = "#/" + path.split("/").map(encodeURIComponent).join("/");
  if (location.hash === target) route();
  else location.hash = target;
}

function parentFolder(path) {
  const trimmed = path.endsWith("/") ? path.slice(0, -1) : path;
  const at = trimmed.lastIndexOf("/");
  return at < 0 ? "" : trimmed.slice(0, at + 1);
}

function leaveView() {
  if (state.watcher) state.watcher.stop();
  state.watcher = null;
  clearInterval(state.ttlTimer);
  state.ttlTimer = null;
  $("#events").hidden = true;
  $("#event-list").textContent = "";
}

function renderCrumbs(path) {
  const crumbs = $("#crumbs");
  crumbs.textContent = "";
  const root = document.createElement("a");
  root.href = "#/";
  root.textContent = "/";
  crumbs.append(root);
  const parts = path.split("/");
  let sofar = "";
  parts.forEach((part, index) => {
    if (!part) return;
    const isLast = index === parts.length - 1;
    sofar += part + (isLast ? "" : "/");
    const link = document.createElement("a");
    link.href = "#/" + sofar.split("/").map(encodeURIComponent).join("/");
    link.textContent = part + (isLast ? "" : "/");
    crumbs.append(link);
  });
}

function route() {
  const path = currentRoute();
  leaveView();
  clearMessage();
  if (state.flash) showMessage(state.flash);
  state.flash = null;
  state.path = path;
  renderCrumbs(path);
  markCurrentInTree(path);
  if (path === "" || path.endsWith("/")) showFolder(path);
  else showThing(path);
}

// A link that opens a thing in the console, named relative to the folder shown.
function thingLink(path, folder) {
  const link = document.createElement("a");
  link.href = "#/" + path.split("/").map(encodeURIComponent).join("/");
  link.textContent = path.slice(folder.length);
  return link;
}

function useTemplate(id) {
  const view = $("#view");
  view.textContent = "";
  view.append($(id).content.cloneNode(true));
  return view;
}

// -- folder view ----------------------------------------------------------------------------

async function showFolder(folder) {
  const view = useTemplate("#tpl-folder");
  view.dataset.kind = "folder";
  $(".title", view).textContent = folder || "/";
  $("[data-act=new]", view).onclick = () => showEditor(folder, null);
  $("[data-act=refresh]", view).onclick = () => route();
  $("[data-act=watch]", view).onclick = (event) => toggleFolderWatch(folder, event.target);
  $("[data-act=more]", view).onclick = () => loadListing(folder, state.cursor);
  setupQuery(folder, view);
  await loadListing(folder, null);
}

async function loadListing(folder, cursor) {
  const view = $("#view");
  let response;
  try {
    const query = { limit: "100" };
    if (cursor) query.cursor = cursor;
    response = await api("GET", folder, { query });
  } catch (error) {
    showMessage(`cannot list ${folder || "/"}: ${error.message}`, "error");
    return;
  }
  if (!cursor) state.listingPosition = response.headers.get("Last-Event-ID");
  const page = await response.json();
  const body = $("tbody", view);
  if (!body) return;
  if (!cursor) body.textContent = "";
  for (const sub of page.folders) {
    const row = body.insertRow();
    row.className = "folder-row";
    const cell = row.insertCell();
    cell.colSpan = 3;
    const link = document.createElement("a");
    link.href = "#/" + sub.split("/").map(encodeURIComponent).join("/");
    link.textContent = sub.slice(folder.length);
    cell.append(link);
  }
  for (const thing of page.things) {
    const row = body.insertRow();
    row.className = "thing-row";
    row.dataset.path = thing.path;
    row.insertCell().append(thingLink(thing.path, folder));
    const ttl = row.insertCell();
    ttl.className = "num";
    ttl.textContent = "ttl " + thing.ttl;
    const updated = row.insertCell();
    updated.className = "num";
    updated.textContent = new Date(thing.last_updated * 1000).toLocaleString();
  }
  if (!cursor && !page.folders.length && !page.things.length) {
    const cell = body.insertRow().insertCell();
    cell.className = "empty";
    cell.textContent = "Nothing here yet.";
  }
  state.cursor = page.next;
  $("[data-act=more]", view).hidden = !page.next;
}

let relistTimer = null;

// Start or stop watching `path` from `position` (null: from now); `label` is the button's text
// while not watching, `onEvent` what a view does with each event after it is logged.
function toggleWatch(path, position, button, label, onEvent) {
  if (state.watcher) {
    state.watcher.stop();
    state.watcher = null;
    button.textContent = label;
    button.classList.remove("on");
    return;
  }
  button.textContent = "Stop watching";
  button.classList.add("on");
  $("#events").hidden = false;
  state.watcher = new Watcher(path, position, (event, data) => {
    logEvent(event, data);
    onEvent(event, data);
  });
}

function toggleFolderWatch(folder, button) {
  toggleWatch(folder, state.listingPosition, button, "Watch folder", () => {
    clearTimeout(relistTimer); // many changes at once: list again once they settle
    relistTimer = setTimeout(() => {
      loadListing(folder, null);
      refreshTree();
    }, 300);
  });
}

function logEvent(event, data) {
  const list = $("#event-list");
  const item = document.createElement("li");
  item.className = "event";
  item.dataset.event = event;
  const thing = data.thing ? " " + JSON.stringify(data.thing) : "";
  item.textContent = `${new Date().toLocaleTimeString()} ${event} ${data.path}${thing}`;
  list.prepend(item);
  while (list.children.length > EVENTS_KEPT) list.lastChild.remove();
}

// -- thing view -----------------------------------------------------------------------------

async function showThing(path, keepWatch = false) {
  let response;
  try {
    response = await api("GET", path);
  } catch (error) {
    if (state.path !== path) return;
    if (error.status === 404) return showMissing(path, keepWatch);
    showMessage(`cannot read ${path}: ${error.message}`, "error");
    return;
  }
  const raw = await response.text();
  if (state.path !== path) return; // the user went elsewhere meanwhile
  let view = $("#view");
  if (!keepWatch || view.dataset.kind !== "thing") {
    view = useTemplate("#tpl-thing");
    view.dataset.kind = "thing";
    $(".title", view).textContent = path;
    $("[data-act=edit]", view).onclick = () => showEditor(path, state.raw);
    $("[data-act=delete]", view).onclick = (event) => confirmDelete(path, event.target);
    $("[data-act=watch]", view).onclick = (event) => toggleThingWatch(path, event.target);
  }
  view.classList.remove("missing");
  $("[data-act=edit]", view).disabled = false;
  $("[data-act=delete]", view).disabled = false;
  state.raw = raw;
  state.etag = response.headers.get("ETag");
  const parsed = JSON.parse(raw);
  $("pre.json", view).innerHTML = prettyJSON(raw, true);
  $(".etag", view).textContent = state.etag || "";
  $(".updated", view).textContent = new Date(parsed.last_updated * 1000).toLocaleString();
  startCountdown(path, parsed.ttl);
}

function showMissing(path, keepWatch) {
  clearInterval(state.ttlTimer);
  let view = $("#view");
  if (!keepWatch || view.dataset.kind !== "thing") {
    view = useTemplate("#tpl-thing");
    view.dataset.kind = "thing";
    $(".title", view).textContent = path;
    $("[data-act=watch]", view).onclick = (event) => toggleThingWatch(path, event.target);
  }
  view.classList.add("missing");
  const edit = $("[data-act=edit]", view);
  edit.textContent = "Create it";
  edit.disabled = false;
  edit.onclick = () => showEditor(path, null);
  $("[data-act=delete]", view).disabled = true;
  $(".meta", view).textContent = "This thing doesn't exist (or has expired).";
  $("pre.json", view).textContent = "null";
  state.raw = null;
  state.etag = null;
}

function startCountdown(path, ttl) {
  clearInterval(state.ttlTimer);
  const started = Date.now();
  const show = () => {
    const left = Math.max(0, ttl - Math.floor((Date.now() - started) / 1000));
    const view = $("#view");
    const meta = $(".meta .ttl", view);
    if (meta) meta.textContent = left + " s";
    const inJson = $("pre.json [data-ttl]", view);
    if (inJson) inJson.textContent = String(left);
    if (left === 0) {
      clearInterval(state.ttlTimer);
      setTimeout(() => state.path === path && showThing(path, true), 1000);
    }
  };
  show();
  state.ttlTimer = setInterval(show, 1000);
}

function toggleThingWatch(path, button) {
  toggleWatch(path, null, button, "Watch", (event, data) => {
    if (state.path !== path) return;
    // Read it again rather than render the event's copy: the text stays byte-exact.
    if (data.thing === null || event === "delete" || event === "expire") showMissing(path, true);
    else showThing(path, true);
  });
}

function confirmDelete(path, button) {
  if (!button.classList.contains("confirm")) {
    button.classList.add("confirm");
    button.textContent = "Really delete?";
    setTimeout(() => {
      button.classList.remove("confirm");
      button.textContent = "Delete";
    }, 5000);
    return;
  }
  api("DELETE", path).then(
    () => {
      goAndTell(parentFolder(path), `deleted ${path}`);
      refreshTree();
    },
    (error) => showMessage(`cannot delete ${path}: ${error.message}`, "error"),
  );
}

// -- create and edit ---------------------------------------------------------------------------

function showEditor(path, raw) {
  leaveView();
  const creating = raw === null;
  const view = useTemplate("#tpl-editor");
  view.dataset.kind = creating ? "create" : "edit";
  $(".title", view).textContent = creating ? "New thing" : "Edit " + path;
  const form = $("form", view);
  form.path.value = path;
  form.path.readOnly = !creating;
  form.json.value = creating ? '{\n  "value": 1\n}' : prettyJSON(withoutReserved(raw), false);
  const check = () => {
    const problem = checkObject(form.json.value);
    const ttl = form.ttl.value.trim();
    const ttlProblem = ttl && !/^[1-9]\d*$/.test(ttl) ? "ttl must be a whole number of seconds" : null;
    const pathProblem = !form.path.value.trim() ? "give the thing a path" : null;
    const message = problem || ttlProblem || pathProblem;
    const validity = $(".validity", view);
    validity.textContent = message ? "✗ " + message : "✓ valid JSON object";
    validity.className = "validity " + (message ? "bad" : "good");
    form.json.classList.toggle("invalid", Boolean(problem));
    $("button[type=submit]", form).disabled = Boolean(message);
    return !message;
  };
  form.oninput = check;
  check();
  $("[data-act=cancel]", view).onclick = () => route();
  form.onsubmit = async (event) => {
    event.preventDefault();
    if (!check()) return;
    const target = form.path.value.trim().replace(/^\/+/, "");
    const query = form.ttl.value.trim() ? { ttl: form.ttl.value.trim() } : undefined;
    // The text is sent as typed, not re-serialised, so every number stays exact.
    const body = form.json.value;
    try {
      let response;
      if (creating && target.endsWith("/")) {
        response = await api("POST", target, { body, query });
      } else {
        const headers = creating ? { "If-None-Match": "*" } : { "If-Match": state.etag };
        response = await api("PUT", target, { body, query, headers });
      }
      const saved = creating && target.endsWith("/") ? (await response.json()).path : target;
      refreshTree();
      goAndTell(saved, `${creating ? "created" : "saved"} ${saved}`);
    } catch (error) {
      const detail =
        error.status === 412
          ? creating
            ? `a thing already exists at ${target}`
            : "it changed since you opened it: reload and edit again"
          : error.message;
      showMessage(`not saved: ${detail}`, "error");
    }
  };
  form.json.focus();
}

// -- folder tree ------------------------------------------------------------------------------

const openFolders = new Set([""]);

async function listInto(folder, list, cursor) {
  let page;
  try {
    const query = { limit: "100" };
    if (cursor) query.cursor = cursor;
    page = await (await api("GET", folder, { query })).json();
  } catch (error) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = error.message;
    list.append(item);
    return;
  }
  for (const sub of page.folders) {
    const item = document.createElement("li");
    item.className = "folder";
    item.dataset.path = sub;
    const link = document.createElement("a");
    link.href = "#/" + sub.split("/").map(encodeURIComponent).join("/");
    link.textContent = sub.slice(folder.length);
    link.onclick = () => toggleTreeFolder(item, sub);
    item.append(link);
    list.append(item);
    if (openFolders.has(sub)) await expand(item, sub);
  }
  for (const thing of page.things) {
    const item = document.createElement("li");
    item.className = "thing";
    item.dataset.path = thing.path;
    const link = document.createElement("a");
    link.href = "#/" + thing.path.split("/").map(encodeURIComponent).join("/");
    link.textContent = thing.path.slice(folder.length);
    item.append(link);
    list.append(item);
  }
  if (page.next) {
    const item = document.createElement("li");
    const more = document.createElement("a");
    more.href = "javascript:void 0";
    more.className = "more";
    more.textContent = "more…";
    more.onclick = () => {
      item.remove();
      listInto(folder, list, page.next);
    };
    item.append(more);
    list.append(item);
  }
}

async function expand(item, folder) {
  item.classList.add("open");
  const list = document.createElement("ul");
  item.append(list);
  await listInto(folder, list, null);
}

function toggleTreeFolder(item, folder) {
  if (item.classList.contains("open")) {
    if (state.path !== folder) return; // first click on an open folder just shows it
    item.classList.remove("open");
    openFolders.delete(folder);
    const list = $("ul", item);
    if (list) list.remove();
  } else {
    openFolders.add(folder);
    expand(item, folder).then(() => markCurrentInTree(state.path));
  }
}

let treeBusy = null;

async function refreshTree() {
  if (treeBusy) return treeBusy;
  treeBusy = (async () => {
    const list = document.createElement("ul");
    await listInto("", list, null);
    const tree = $("#tree");
    tree.textContent = "";
    tree.append(list);
    markCurrentInTree(state.path);
  })();
  try {
    await treeBusy;
  } finally {
    treeBusy = null;
  }
}

function markCurrentInTree(path) {
  for (const link of document.querySelectorAll("#tree a.current")) link.classList.remove("current");
  for (const item of document.querySelectorAll("#tree li[data-path]")) {
    if (item.dataset.path === path) $("a", item).classList.add("current");
  }
}

// -- start ------------------------------------------------------------------------------------

$("#key-button").onclick = async () => {
  if (await askKey("An API key for this server, or a user's ID token (kept in this tab only).")) {
    refreshTree();
    route();
  }
};
// -- queries: a folder's things in the order of a field, with ranks, once or live -----------

function queryParameters(form) {
  const query = { order_by: form.order_by.value.trim() };
  if (form.desc.checked) query.desc = "true";
  for (const name of ["limit", "start_at", "end_at"]) {
    if (form[name].value.trim()) query[name] = form[name].value.trim();
  }
  return query;
}

function showAnswer(view, folder, answer) {
  const body = $(".answer tbody", view);
  if (!body) return;
  body.textContent = "";
  for (const thing of answer.things) {
    const row = body.insertRow();
    row.className = "answer-row";
    row.dataset.path = thing.path;
    const rank = row.insertCell();
    rank.className = "num";
    rank.textContent = "#" + thing.rank;
    row.insertCell().append(thingLink(thing.path, folder));
    const key = row.insertCell();
    key.className = "key";
    key.textContent = JSON.stringify(thing.key);
  }
  if (!answer.things.length) {
    const cell = body.insertRow().insertCell();
    cell.className = "empty";
    cell.textContent = "Nothing in this order and range.";
  }
}

async function showIndexes(folder, view) {
  const line = $(".indexes", view);
  try {
    const response = await api("GET", "_indexes");
    const { indexes } = await response.json();
    const here = indexes.filter((index) => {
      const pattern = index.folder.split("/");
      const actual = folder.split("/");
      return pattern.length === actual.length && pattern.every((p, i) => p === "*" || p === actual[i]);
    });
    line.textContent = here.length
      ? "Indexes: " + here.map((i) => `${i.field} (${i.state})`).join(", ")
      : "No index on this folder: a field is ordered for up to 1,000 things; $name for any.";
  } catch (error) {
    line.textContent = "Indexes: " + error.message;
  }
}

function setupQuery(folder, view) {
  const panel = $(".query-panel", view);
  const form = $("form.query", view);
  panel.addEventListener("toggle", () => panel.open && showIndexes(folder, view), { once: true });
  form.onsubmit = async (event) => {
    event.preventDefault();
    try {
      const response = await api("GET", folder, { query: queryParameters(form) });
      showAnswer(view, folder, await response.json());
      clearMessage();
    } catch (error) {
      showMessage(`query refused: ${error.message}`, "error");
    }
  };
  $("[data-act=watch-query]", view).onclick = (event) => {
    const button = event.target;
    if (state.watcher) {
      state.watcher.stop();
      state.watcher = null;
      button.textContent = "Watch query";
      button.classList.remove("on");
      return;
    }
    button.textContent = "Stop watching";
    button.classList.add("on");
    const onEvent = (kind, answer) => kind === "query" && showAnswer(view, folder, answer);
    state.watcher = new Watcher(folder, null, onEvent, queryParameters(form));
  };
}

window.addEventListener("hashchange", route);
updateKeyButton();
refreshTree();
route();
