// video2mp3's page: log in, upload many videos at once, watch them convert live, play and
// download the MP3s. Plain JavaScript against the same JSON API as every other client; the session
// is an HttpOnly cookie this script never sees, and every change carries the CSRF token that
// /session hands out. Live updates come from one Server-Sent Events stream; when the server has no
// room for another stream the page polls the first page of jobs once a second instead.
// Dropped videos wait in the page and go a few at a time. When the server cannot take one yet
// (429: as many of the person's jobs are converting as allowed; 503: busy), every video not sent
// waits until its Retry-After is over, or until one of the person's jobs ends; then one goes
// first, and the rest follow once the server has taken it: the policy of the command-line client
// (client/retry.py), so a full server sees one try per wait, not one per video.

import { duration, problem, size, when } from "./format.js";

const PAGE = 20;
const RANK = { waiting: 0, uploading: 0, queued: 1, processing: 2, succeeded: 3, failed: 3 };
const UPLOADS_AT_ONCE = 3; // more would queue in the browser, where they could not be held back
const WAIT = { least: 1, most: 300, unsaid: 10 }; // seconds, as the command-line client's

const $ = (selector, root = document) => root.querySelector(selector);
const list = $("#jobs");
const items = new Map(); // job id -> <li>
const early = new Map(); // job id -> job heard of before its upload answered
let csrf = "";
let stream = null;
let pollTimer = null;
let uploading = 0;
let loaded = 0; // jobs of the history loaded from the server, for "Show older"
const waiting = []; // videos not sent yet, first dropped first: { file, fields, li, job }
let hold = null; // while the server refuses uploads: { status, until, timer }
let probing = false; // one upload is finding out whether the hold is over

// --- the server -------------------------------------------------------------------------------

async function call(method, url, body) {
  const headers = { "X-CSRF-Token": csrf };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 401 && url !== "/session") showWelcome();
  return response;
}

// --- one job ------------------------------------------------------------------------------------

function showEmpty() {
  $("#empty").hidden = list.children.length > 0;
}

function newItem() {
  const li = $("#job-template").content.firstElementChild.cloneNode(true);
  $(".delete", li).addEventListener("click", () => remove(li));
  return li;
}

function isOlder(job, than) {
  if (!than) return false;
  const a = RANK[job.status];
  const b = RANK[than.status];
  return a < b || (a === b && a < 3 && job.progress < than.progress);
}

function render(li, job) {
  if (isOlder(job, li.job)) return; // a stale answer never undoes a newer one
  li.job = job;
  const working = !(job.status in { succeeded: 1, failed: 1, waiting: 1 });
  const percent = Math.round((job.status === "uploading" ? job.sent : job.progress) * 100);
  $(".name", li).textContent = job.filename;
  const status = $(".status", li);
  status.textContent = job.status;
  status.className = `status ${job.status}`;
  const bar = $(".progress", li);
  bar.hidden = !working;
  if (working) {
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-label", `${job.status} ${job.filename}`);
    $(".fill", bar).style.width = `${percent}%`;
  } else {
    bar.removeAttribute("aria-valuenow");
  }
  $(".meta", li).textContent = meta(job, percent);
  $(".error", li).textContent = job.error ? `${job.error.message} (${job.error.code})` : "";
  const audio = $("audio", li);
  const download = $(".download", li);
  const done = job.status === "succeeded" && job.download_url;
  audio.hidden = download.hidden = !done;
  if (done && audio.dataset.job !== job.id) {
    // Same origin as the page: behind a proxy that ends TLS the absolute URL may say http.
    const link = new URL(job.download_url, location.href).pathname;
    audio.dataset.job = job.id; // set once: a fresh link would restart the player
    audio.src = link;
    audio.setAttribute("aria-label", `Play ${job.filename}`);
    download.href = link;
  }
  $(".delete", li).hidden = job.status === "uploading" || !job.id;
}

function meta(job, percent) {
  switch (job.status) {
    case "waiting":
      return job.why;
    case "uploading":
      return `Uploading: ${size(job.loaded)} of ${size(job.total)} (${percent}%)`;
    case "queued":
      return "Waiting for a converter";
    case "processing":
      return `Converting: ${percent}%`;
    case "succeeded":
      return [duration(job.duration), size(job.mp3_size), when(job.created_at)].filter(Boolean).join(" · ");
    default:
      return when(job.created_at);
  }
}

function place(job, where) {
  const li = newItem();
  li.dataset.id = job.id;
  items.set(job.id, li);
  render(li, job);
  if (where === "top") list.prepend(li);
  else list.append(li);
  showEmpty();
}

function update(job) {
  const li = items.get(job.id);
  const was = li?.job;
  if (li) render(li, job);
  else if (uploading) early.set(job.id, job); // maybe ours: its upload has not answered yet
  else place(job, "top");
  if (was && RANK[was.status] < 3 && RANK[job.status] === 3) placeFreed();
}

async function remove(li) {
  const button = $(".delete", li);
  button.disabled = true;
  const response = await call("DELETE", `/api/v1/jobs/${encodeURIComponent(li.dataset.id)}`);
  if (response.ok || response.status === 404) {
    items.delete(li.dataset.id);
    li.remove();
    loaded = Math.max(0, loaded - 1);
    showEmpty();
  } else {
    button.disabled = false;
    $(".error", li).textContent = await problem(response);
  }
}

// --- uploads ------------------------------------------------------------------------------------

function options() {
  const fields = [];
  for (const input of $("#upload").querySelectorAll("[name]:not([type=file])")) {
    if (input.type === "checkbox") {
      const value = String(input.checked);
      if (value !== input.dataset.default) fields.push([input.name, value]);
    } else if (input.value.trim()) {
      fields.push([input.name, input.value.trim()]);
    }
  }
  return fields;
}

function uploadAll(files) {
  const fields = options(); // as they are now, for every video of this drop
  for (const file of files) {
    const li = newItem();
    list.prepend(li);
    const job = { id: "", status: "uploading", filename: file.name, sent: 0, loaded: 0, total: file.size };
    waiting.push({ file, fields, li, job });
  }
  showEmpty();
  sendWaiting();
  waiting.forEach(showWaiting);
}

function sendWaiting() {
  while (waiting.length && uploading < UPLOADS_AT_ONCE) {
    if (!hold) {
      send(waiting.shift(), false);
      continue;
    }
    const left = hold.until - Date.now();
    if (probing) return; // its answer calls again
    if (left > 0) {
      clearTimeout(hold.timer);
      hold.timer = setTimeout(sendWaiting, left);
      return;
    }
    probing = true;
    send(waiting.shift(), true);
  }
}

function showWaiting(entry) {
  const { li, job } = entry;
  li.job = null;
  render(li, { ...job, status: "waiting", why: waitingWords() });
}

function waitingWords() {
  if (hold?.status === 429) {
    const most = Number($("#app").dataset.maxActiveJobs);
    const videos = most === 1 ? "1 of your videos is" : `${most} of your videos are`;
    return `Waiting — ${videos} already converting; this one starts when one finishes`;
  }
  if (hold) return "Waiting — the server is busy; this one tries again in a moment";
  return "Waiting for the uploads before it";
}

function holdUploads(status, seconds) {
  clearTimeout(hold?.timer);
  const news = hold?.status !== status; // said once, not at every try
  hold = { status, until: Date.now() + seconds * 1000, timer: null };
  sendWaiting(); // only sets the timer
  waiting.forEach(showWaiting);
  if (!news) return;
  const count = waiting.length === 1 ? "1 video waits" : `${waiting.length} videos wait`;
  const most = Number($("#app").dataset.maxActiveJobs);
  const why = status === 429 ? `${most} of yours are already converting` : "the server is busy";
  $("#announce").textContent = `${count} to start: ${why}`;
}

function placeFreed() {
  if (hold?.status !== 429) return; // a busy server is not freed by a job that ends
  clearTimeout(hold.timer);
  hold.until = Date.now();
  sendWaiting();
}

function retryAfter(xhr) {
  const value = (xhr.getResponseHeader("Retry-After") || "").trim();
  let seconds = WAIT.unsaid;
  if (/^\d+$/.test(value)) seconds = Number(value);
  else if (/GMT$/.test(value) && !Number.isNaN(Date.parse(value))) seconds = (Date.parse(value) - Date.now()) / 1000;
  return Math.min(Math.max(seconds, WAIT.least), WAIT.most);
}

function send(entry, probe) {
  const { file, fields, li, job } = entry;
  li.job = null;
  render(li, job);
  const form = new FormData();
  for (const [name, value] of fields) form.append(name, value);
  form.append("file", file, file.name); // fields first: the server reads them before the file
  const xhr = new XMLHttpRequest(); // fetch cannot report upload progress
  xhr.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    render(li, { ...job, sent: event.loaded / event.total, loaded: event.loaded, total: event.total });
  });
  xhr.addEventListener("loadend", () => {
    uploading -= 1;
    if (probe) probing = false;
    if ((xhr.status === 429 || xhr.status === 503) && csrf) {
      waiting.unshift(entry); // first in line again, with the others held behind it
      holdUploads(xhr.status, retryAfter(xhr));
    } else if (xhr.status === 201 || xhr.status === 202) {
      if (probe) {
        clearTimeout(hold?.timer);
        hold = null; // there was room: the others may go
      }
      const answer = JSON.parse(xhr.responseText);
      li.dataset.id = answer.id;
      items.set(answer.id, li);
      render(li, answer);
      const heard = early.get(answer.id);
      if (heard) render(li, heard);
      early.delete(answer.id);
    } else {
      const failure = { ...job, status: "failed", error: uploadError(xhr) };
      li.job = null;
      render(li, failure);
      $(".delete", li).hidden = true;
      setTimeout(() => li.remove(), 60000);
    }
    if (!uploading) {
      for (const other of early.values()) place(other, "top");
      early.clear();
    }
    sendWaiting();
    waiting.forEach(showWaiting);
  });
  uploading += 1;
  xhr.open("POST", "/api/v1/jobs");
  xhr.setRequestHeader("X-CSRF-Token", csrf);
  xhr.send(form);
}

function uploadError(xhr) {
  try {
    return JSON.parse(xhr.responseText).error;
  } catch {
    return { code: "upload_failed", message: xhr.status ? `the server answered ${xhr.status}` : "the connection broke" };
  }
}

// --- the history and live updates -----------------------------------------------------------

async function loadPage(offset) {
  const response = await call("GET", `/api/v1/jobs?limit=${PAGE}&offset=${offset}`);
  if (!response.ok) return null;
  return response.json();
}

async function showOlder() {
  const page = await loadPage(loaded);
  if (!page) return;
  for (const job of page.items) if (!items.has(job.id)) place(job, "bottom");
  loaded += page.items.length;
  $("#more").hidden = page.offset + page.items.length >= page.total;
  showEmpty();
}

async function refresh() {
  const page = await loadPage(0);
  if (!page) return;
  for (const job of [...page.items].reverse()) update(job);
}

function connect() {
  stream = new EventSource("/api/v1/events");
  stream.addEventListener("job", (event) => update(JSON.parse(event.data)));
  stream.addEventListener("open", () => {
    clearInterval(pollTimer);
    pollTimer = null;
    refresh(); // what changed while the stream was down
  });
  stream.addEventListener("error", () => {
    if (stream.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    stream = null;
    pollTimer ??= setInterval(() => {
      const active = [...items.values()].some((li) => li.job && RANK[li.job.status] < 3);
      if (active) refresh();
    }, 1000);
    setTimeout(() => csrf && !stream && connect(), 30000);
  });
}

// --- who is here ------------------------------------------------------------------------------

function showWelcome() {
  csrf = "";
  waiting.length = 0;
  clearTimeout(hold?.timer);
  hold = null;
  probing = false;
  stream?.close();
  stream = null;
  clearInterval(pollTimer);
  pollTimer = null;
  items.clear();
  list.replaceChildren();
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#welcome").hidden = false;
}

async function loggedIn(session) {
  csrf = session.csrf;
  $("#who-email").textContent = session.email;
  $("#welcome").hidden = true;
  $("#who").hidden = false;
  $("#app").hidden = false;
  loaded = 0;
  await showOlder();
  connect();
}

async function logIn(email, password) {
  const response = await call("POST", "/session", { email, password });
  if (!response.ok) throw new Error(await problem(response));
  $("#login").reset();
  await loggedIn(await response.json());
}

async function signUp(email, password) {
  const response = await call("POST", "/api/v1/users", { email, password });
  if (!response.ok) throw new Error(await problem(response));
  await logIn(email, password);
}

function credentials(action) {
  return async (event) => {
    event?.preventDefault();
    const error = $("#login-error");
    error.textContent = "";
    const buttons = $("#login").querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      await action($("#email").value.trim(), $("#password").value);
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  };
}

// --- wiring -----------------------------------------------------------------------------------

$("#login").addEventListener("submit", credentials(logIn));
$("#signup")?.addEventListener("click", credentials(signUp));
$("#logout").addEventListener("click", async () => {
  await call("DELETE", "/session");
  showWelcome();
});
$("#more").addEventListener("click", showOlder);
$("#videos").addEventListener("change", (event) => {
  uploadAll(event.target.files);
  event.target.value = "";
});
const drop = $("#drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  uploadAll(event.dataTransfer.files);
});

const session = await (await fetch("/session", { credentials: "same-origin" })).json();
if (session.email) await loggedIn(session);
else showWelcome();
