// The supervisors' board. The /board namespace pushes the whole snapshot
// (qc_live/board.py) whenever the floor changes and at least twice a second;
// this page draws it, with the completions chart read from the server's
// history (GET /stats/completions), and offers the REST actions: release,
// cancel, reprioritise, pause/resume a reviewer, and task import (JSON or CSV)
// with a report. Queues and skills (tiles, the queue filter, the skills editor)
// are in queues.js; the review form editor in formeditor.js; the results view
// and search in results.js; the task drawer in drawer.js; people in people.js.
import { drawBuckets } from "./chart.js";
import { $, formatClock, formatDuration, formatSeconds, h, parseTime, setText } from "./dom.js";
import { initDrawer, taskLink } from "./drawer.js";
import { live } from "./live.js";
import { act, describe, toast } from "./feedback.js";
import { initFormEditor } from "./formeditor.js";
import { initPeople, loadPeople, people } from "./people.js";
import { editSkills, initQueueForm, initSkillsEditor, renderQueues, skillChips, tickQueues,
  waitingLine } from "./queues.js";
import { initResults, loadResults, renameReviewers, syncResultFilters } from "./results.js";
import { ApiError, api, logout, requireSession, upload } from "./session.js";

const CHART_REFRESH_MS = 60000; // and whenever the floor's completions change
const TASK_LIST_LIMIT = 50;
const WAITING_ASKED = 5; // pending rows whose reason is asked at once (the head of the list)

const session = requireSession(["supervisor", "admin"]);

const state = {
  snap: null,
  received: 0, // Date.now() when the snapshot came
  skew: 0, // server clock minus ours, in ms (from the snapshot's `at`)
  names: new Map(), // reviewer id -> username
  completedKey: null, // the snapshot's completion figures when last seen
  peopleKey: null, // the reviewers' ids and availability when last seen
  chartTimer: null,
  tasksStatus: "pending",
  tasksQueue: "", // "" for every queue
  tasksUnsupported: null, // an ApiError when GET /tasks is not offered
  tasksKey: "", // queue counts when the list was last read
  tasksTimer: null,
};

const rows = new Map(); // reviewer id -> {tr, cells, buttons}

// --- small helpers -----------------------------------------------------------------

function serverNow() {
  return Date.now() + state.skew;
}

/** Every account's name by id: the snapshot's reviewers and GET /users. */
function allNames() {
  const names = new Map(people().map((u) => [u.id, u.username]));
  for (const [id, name] of state.names) names.set(id, name);
  return names;
}

function tasksChanged() {
  scheduleTasks();
  loadResults();
}

/**
 * A button that asks "Sure?" on the first click and acts on the second (within
 * 4 s). `subject()` is read at the first click (e.g. the task id on screen then),
 * so the second click acts on what the person saw, even if the row changed.
 */
function confirmButton(label, subject, onConfirm, extraClass = "") {
  const button = h("button", { type: "button", class: `btn btn-small ${extraClass}` }, label);
  armable(button, label, subject, onConfirm);
  return button;
}

function armable(button, label, subject, onConfirm) {
  let armed = null;
  let what = null;
  const disarm = () => {
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    button.classList.remove("armed");
  };
  button.addEventListener("click", () => {
    if (!armed) {
      what = subject();
      if (what === null || what === undefined) return;
      button.textContent = "Sure?";
      button.classList.add("armed");
      armed = setTimeout(disarm, 4000);
      return;
    }
    disarm();
    onConfirm(what, button);
  });
}

// --- task actions (REST) -----------------------------------------------------------

function releaseTask(id, button) {
  return act(button, () => api("POST", `/tasks/${id}/release`),
    `Task #${id} went back to the queue.`).then(scheduleTasks);
}

function cancelTask(id, button) {
  return act(button, () => api("PATCH", `/tasks/${id}`, { status: "cancelled" }),
    `Task #${id} was cancelled.`).then(scheduleTasks);
}

function reprioritise(id, priority, button) {
  if (!Number.isInteger(priority)) {
    toast("error", "The priority must be a whole number.");
    return Promise.resolve();
  }
  return act(button, () => api("PATCH", `/tasks/${id}`, { priority }),
    `Task #${id} now has priority ${priority}.`).then(scheduleTasks);
}

function setAvailability(reviewer, available, button) {
  const body = { availability: available ? 1 : 0, user_id: reviewer.id };
  return act(button, () => api("PUT", "/availability", body),
    `${reviewer.username} is ${available ? "available again" : "paused"}.`);
}

// --- the snapshot --------------------------------------------------------------------

function reviewerStatus(r) {
  if (!r.online) return ["offline", "Offline"];
  if (r.connected === false) return ["away", "Reconnecting"];
  if (r.task_id) return ["busy", r.available ? "On task" : "On task · pausing"];
  if (!r.available) return ["paused", "Paused"];
  return ["idle", "Idle"];
}

function reviewerRow(r) {
  let row = rows.get(r.id);
  if (row) return row;
  const name = h("span", { class: "reviewer-name" });
  const skills = h("span", { class: "reviewer-skills" });
  const editSkillsButton = h("button", { type: "button", class: "link-button skills-edit",
    "aria-label": `Edit the skills of ${r.username}` }, "edit skills");
  const cells = {
    name: h("td", { class: "name" }, name, h("span", { class: "skills-line" }, skills, editSkillsButton)),
    status: h("td", {}),
    task: h("td", {}),
    since: h("td", { class: "tabular" }),
    done: h("td", { class: "num" }),
    today: h("td", { class: "num" }),
    passfail: h("td", { class: "num" }),
    actions: h("td", { class: "actions" }),
  };
  const pill = h("span", { class: "pill" });
  cells.status.append(pill);
  const buttons = {
    pause: h("button", { type: "button", class: "btn btn-small" }),
    skills: editSkillsButton,
    release: h("button", { type: "button", class: "btn btn-small" }, "Release"),
    cancel: null,
  };
  const tr = h("tr", { dataset: { reviewer: r.username, reviewerId: r.id } }, Object.values(cells));
  row = { tr, cells, name, skills, pill, buttons, reviewer: r };
  buttons.pause.addEventListener("click", () => {
    const current = row.reviewer;
    setAvailability(current, !current.available, buttons.pause);
  });
  buttons.skills.addEventListener("click", () => editSkills(row.reviewer));
  buttons.release.addEventListener("click", () => {
    if (row.reviewer.task_id) releaseTask(row.reviewer.task_id, buttons.release);
  });
  buttons.cancel = confirmButton("Cancel task", () => row.reviewer.task_id,
    (taskId, button) => cancelTask(taskId, button), "btn-danger-ghost");
  cells.actions.append(buttons.pause, buttons.release, buttons.cancel);
  rows.set(r.id, row);
  return row;
}

function renderReviewers(snap) {
  const body = $("#reviewers tbody");
  const stats = new Map(((snap.stats && snap.stats.reviewers) || []).map((s) => [s.id, s]));
  const seen = new Set();
  let online = 0;
  let busy = 0;
  snap.reviewers.forEach((r, index) => {
    seen.add(r.id);
    if (r.online) online += 1;
    if (r.task_id) busy += 1;
    const row = reviewerRow(r);
    row.reviewer = r;
    const [kind, label] = reviewerStatus(r);
    setText(row.name, r.username);
    const skillsKey = JSON.stringify(r.skills ?? null);
    if (row.skills.dataset.key !== skillsKey) {
      row.skills.dataset.key = skillsKey;
      row.skills.replaceChildren(...[skillChips(r.skills)].filter(Boolean));
    }
    row.buttons.skills.hidden = !r.skills; // a server without skills
    row.pill.className = `pill pill-${kind}`;
    setText(row.pill, label);
    row.tr.dataset.status = kind;
    row.tr.dataset.reviewer = r.username;
    if (row.cells.task.dataset.task !== String(r.task_id ?? "")) {
      row.cells.task.dataset.task = String(r.task_id ?? "");
      row.cells.task.replaceChildren(r.task_id ? taskLink(r.task_id) : "–");
    }
    row.cells.since.dataset.since = r.task_since || "";
    const mine = stats.get(r.id);
    setText(row.cells.done, r.completed_count);
    setText(row.cells.today, mine ? mine.completed_today : "–");
    setText(row.cells.passfail, mine ? `${mine.passed} / ${mine.failed}` : "–");
    setText(row.buttons.pause, r.available ? "Pause" : "Resume");
    row.buttons.release.hidden = !r.task_id;
    row.buttons.cancel.hidden = !r.task_id;
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $("#reviewers-empty").hidden = snap.reviewers.length > 0;
  setText($("#reviewers-summary"), `${online} online · ${busy} on a task · ${snap.reviewers.length} in all`);
  setText($("#stat-online"), `${online} / ${snap.reviewers.length}`);
}

function barFill(fraction) {
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = `${Math.max(2, fraction * 100)}%`; // CSSOM: the CSP forbids style attributes
  return fill;
}

function renderQueue(snap) {
  const queue = snap.queue;
  setText($("#stat-pending"), queue.pending);
  setText($("#stat-assigned"), queue.assigned);
  setText($("#stat-hour"), snap.stats.completed_last_hour);
  setText($("#stat-median"), formatSeconds(snap.stats.median_handle_s));
  const entries = Object.entries(queue.by_priority || {})
    .map(([priority, count]) => [Number(priority), count])
    .sort((a, b) => b[0] - a[0]);
  const most = Math.max(1, ...entries.map(([, n]) => n));
  const list = $("#by-priority");
  const key = JSON.stringify(entries);
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...entries.map(([priority, count]) => h("li", { dataset: { priority } },
    h("span", { class: "bar-label" }, `P${priority}`),
    h("span", { class: "bar-track" }, barFill(count / most)),
    h("span", { class: "bar-value" }, count))));
  $("#queue-empty").hidden = entries.length > 0;
}

/** The chart from the server's history: GET /stats/completions over the chosen hours. */
async function loadChart() {
  clearTimeout(state.chartTimer);
  state.chartTimer = setTimeout(loadChart, CHART_REFRESH_MS);
  const hours = Number($("#chart-hours").value) || 8;
  const bucketS = hours <= 1 ? 120 : hours <= 8 ? 600 : 1800;
  const note = $("#chart-note");
  try {
    const body = await api("GET", `/stats/completions?hours=${hours}&bucket_s=${bucketS}`);
    drawBuckets($("#chart"), body.buckets, body.bucket_s, body.hours);
    const total = body.buckets.reduce((sum, b) => sum + b.completed, 0);
    const passed = body.buckets.reduce((sum, b) => sum + b.pass, 0);
    setText(note, `${total} completed (${passed} pass, ${total - passed} fail or other) · `
      + `${Math.round(body.bucket_s / 60)}-minute bars`);
    note.classList.remove("warn");
  } catch (error) {
    setText(note, `Could not read the completions: ${describe(error)}`);
    note.classList.add("warn");
  }
}

let chartSoon = null;

function scheduleChart() {
  if (chartSoon) return;
  chartSoon = setTimeout(() => {
    chartSoon = null;
    loadChart();
  }, 1000);
}

function onBoard(snap) {
  if (!snap || !Array.isArray(snap.reviewers)) return;
  state.snap = snap;
  state.received = Date.now();
  const at = parseTime(snap.at);
  if (at !== null) state.skew = at - state.received;
  state.names = new Map(snap.reviewers.map((r) => [r.id, r.username]));
  const completed = `${snap.reviewers.reduce((sum, r) => sum + (r.completed_count || 0), 0)}`
    + `/${snap.stats.completed_last_hour}`;
  if (state.completedKey !== null && completed !== state.completedKey) {
    scheduleChart();
    loadResults();
  }
  state.completedKey = completed;
  const peopleKey = JSON.stringify(snap.reviewers.map((r) => [r.id, r.available, r.online,
    Boolean(r.task_id), r.skills ?? null]));
  if (state.peopleKey !== null && peopleKey !== state.peopleKey) loadPeople();
  state.peopleKey = peopleKey;
  renderReviewers(snap);
  renderQueue(snap);
  renderQueues(snap, pickQueue);
  syncResultFilters(snap.queues, people().length ? people().filter((u) => u.role === "reviewer")
    : snap.reviewers);
  renameReviewers();
  tick();
  const key = `${snap.queue.pending}/${snap.queue.assigned}/${snap.stats.completed_last_hour}`;
  if (key !== state.tasksKey) {
    state.tasksKey = key;
    scheduleTasks();
  }
  document.body.dataset.boardAt = snap.at || "";
}

function tick() {
  const snap = state.snap;
  if (!snap) return;
  const now = serverNow();
  for (const row of rows.values()) {
    const since = parseTime(row.cells.since.dataset.since);
    setText(row.cells.since, since === null ? "–" : formatDuration((now - since) / 1000));
  }
  tickQueues((Date.now() - state.received) / 1000);
  const oldest = snap.queue.oldest_pending_age_s;
  setText($("#stat-oldest"), oldest === null || oldest === undefined
    ? "–" : formatDuration(oldest + (Date.now() - state.received) / 1000));
}

// --- the task list (GET /tasks) ---------------------------------------------------------

function scheduleTasks() {
  if (state.tasksUnsupported || state.tasksTimer) return;
  state.tasksTimer = setTimeout(() => {
    state.tasksTimer = null;
    loadTasks();
  }, 600);
}

/** Show the task list of one queue ("" for all): the select and the tiles' buttons. */
function pickQueue(name) {
  const select = $("#tasks-queue");
  if (name && ![...select.options].some((o) => o.value === name)) {
    select.append(h("option", { value: name }, name));
  }
  select.value = name;
  state.tasksQueue = name;
  state.tasksUnsupported = null;
  loadTasks();
  $("#tasks-title").scrollIntoView({ block: "start", behavior: "smooth" });
}

async function loadTasks() {
  const status = state.tasksStatus;
  const queue = state.tasksQueue;
  const order = status === "pending" || status === "assigned" ? "priority" : "-created_at";
  const note = $("#tasks-note");
  const filter = queue ? `&queue=${encodeURIComponent(queue)}` : "";
  let body;
  try {
    body = await api("GET", `/tasks?status=${status}${filter}&order_by=${order}&limit=${TASK_LIST_LIMIT}`);
  } catch (error) {
    if (error instanceof ApiError && error.unsupported) {
      state.tasksUnsupported = error;
      $("#tasks tbody").replaceChildren();
      $("#tasks-wrap").hidden = true;
      setText(note, `This server cannot list tasks yet (GET /tasks answered ${error.status} `
        + `${error.code}). Use “Act on a task by number” below.`);
      note.classList.add("warn");
    } else {
      setText(note, `Could not load the tasks: ${describe(error)}`);
      note.classList.add("warn");
    }
    return;
  }
  state.tasksUnsupported = null;
  note.classList.remove("warn");
  $("#tasks-wrap").hidden = false;
  if (status !== state.tasksStatus || queue !== state.tasksQueue) return; // the filter changed meanwhile
  const tasks = body.tasks || [];
  if (status === "pending" || status === "assigned") {
    // Dispatch order, whichever way the server sorted: priority, then age.
    tasks.sort((a, b) => b.priority - a.priority || String(a.created_at).localeCompare(String(b.created_at)));
  }
  $("#tasks tbody").replaceChildren(...tasks.map((task, index) => taskRow(task, index < WAITING_ASKED)));
  const where = queue ? ` in ${queue}` : "";
  setText(note, tasks.length === 0 ? `No ${status} tasks${where}.`
    : `${tasks.length}${body.next_cursor ? "+" : ""} ${status} task${tasks.length === 1 ? "" : "s"}${where}`
      + (body.next_cursor ? ` (first ${tasks.length} shown)` : ""));
}

function taskRow(task, askWhy = false) {
  const live = task.status === "pending" || task.status === "assigned";
  const priority = h("input", { type: "number", value: task.priority, class: "priority-input",
    "aria-label": `Priority of task ${task.id}` });
  const set = h("button", { type: "button", class: "btn btn-small" }, "Set");
  set.addEventListener("click", () => reprioritise(task.id, Number(priority.value), set));
  priority.addEventListener("keydown", (event) => {
    if (event.key === "Enter") reprioritise(task.id, Number(priority.value), set);
  });
  const actions = h("td", { class: "actions" });
  if (live) {
    if (task.status === "assigned") {
      const release = h("button", { type: "button", class: "btn btn-small" }, "Release");
      release.addEventListener("click", () => releaseTask(task.id, release));
      actions.append(release);
    }
    actions.append(confirmButton("Cancel", () => task.id, (id, button) => cancelTask(id, button),
      "btn-danger-ghost"));
  }
  return h("tr", { dataset: { task: task.id } },
    h("td", { class: "tabular" }, taskLink(task.id)),
    h("td", { class: "name", title: task.external_id ? `ref ${task.external_id}` : null },
      h("span", { class: "task-name" }, taskLink(task.id, task.name)),
      task.status === "pending" ? waitingLine(task, askWhy) : null),
    h("td", { class: "task-queue" }, task.queue ?? "–"),
    h("td", { class: "num" }, live ? h("span", { class: "priority-edit" }, priority, set) : task.priority),
    h("td", {}, h("span", { class: `pill pill-task-${task.status}` }, task.status)),
    h("td", {}, task.assignee_id ? state.names.get(task.assignee_id) || `#${task.assignee_id}` : "–"),
    h("td", { class: "tabular" }, formatClock(task.created_at)),
    h("td", { class: "tabular" }, task.deadline ? formatClock(task.deadline) : "–"),
    actions);
}

function initTaskForm() {
  const form = $("#task-action");
  const idInput = $("#action-id");
  const priorityInput = $("#action-priority");
  const taskId = () => {
    const id = Number(idInput.value);
    if (idInput.value === "" || !Number.isInteger(id) || id < 1) {
      toast("error", "Enter a task number first.");
      idInput.focus();
      return null;
    }
    return id;
  };
  form.addEventListener("submit", (event) => event.preventDefault());
  form.querySelector('[data-action="release"]').addEventListener("click", (event) => {
    const id = taskId();
    if (id !== null) releaseTask(id, event.currentTarget);
  });
  armable(form.querySelector('[data-action="cancel"]'), "Cancel", taskId, (id, button) => cancelTask(id, button));
  form.querySelector('[data-action="priority"]').addEventListener("click", (event) => {
    const id = taskId();
    const priority = priorityInput.value === "" ? NaN : Number(priorityInput.value);
    if (id !== null) reprioritise(id, priority, event.currentTarget);
  });
  $("#tasks-status").addEventListener("change", (event) => {
    state.tasksStatus = event.target.value;
    state.tasksUnsupported = null;
    loadTasks();
  });
  $("#tasks-queue").addEventListener("change", (event) => {
    state.tasksQueue = event.target.value;
    state.tasksUnsupported = null;
    loadTasks();
  });
  $("#tasks-refresh").addEventListener("click", () => {
    state.tasksUnsupported = null;
    loadTasks();
  });
}

// --- import --------------------------------------------------------------------------

function progress(fraction, label) {
  $("#import-progress").hidden = fraction === null && !label;
  const fill = $("#import-progress-fill");
  fill.parentElement.classList.toggle("indeterminate", fraction === "busy");
  fill.style.width = typeof fraction === "number" ? `${Math.round(fraction * 100)}%` : "100%";
  setText($("#import-progress-label"), label || "");
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function idRange(tasks) {
  if (!tasks.length) return "";
  const ids = tasks.map((t) => t.id).sort((a, b) => a - b);
  return ids.length === 1 ? `#${ids[0]}` : `#${ids[0]}–#${ids[ids.length - 1]}`;
}

function badRowsTable(bad) {
  const shown = bad.slice(0, 200);
  const table = h("table", { class: "table table-compact" },
    h("thead", {}, h("tr", {}, h("th", {}, "Row"), h("th", {}, "Field"), h("th", {}, "Code"),
      h("th", {}, "Problem"))),
    h("tbody", {}, shown.map((row) => h("tr", {},
      h("td", { class: "tabular" }, row.line ?? row.row ?? row.index ?? "–"),
      h("td", {}, row.field || "–"),
      h("td", {}, h("code", {}, row.code || "–")),
      h("td", {}, row.message || "")))));
  return [table, bad.length > shown.length ? h("p", { class: "muted small" },
    `… and ${bad.length - shown.length} more.`) : null];
}

/** Read whatever an import answered: created tasks, and the rows it refused. */
function summarise(body) {
  const tasks = Array.isArray(body && body.tasks) ? body.tasks : [];
  let created = tasks.length;
  if (body && typeof body.created === "number") created = body.created;
  else if (body && Array.isArray(body.created)) created = body.created.length;
  const bad = (body && (body.rows || body.errors || body.bad_rows || body.rejected))
    || (body && body.error && body.error.rows) || [];
  return { tasks, created, bad: Array.isArray(bad) ? bad : [] };
}

function report(kind, title, details = []) {
  $("#import-report").replaceChildren(h("div", { class: `report report-${kind}` },
    h("strong", {}, title), ...details));
}

async function runImport(button, send) {
  button.disabled = true;
  progress(0, "Uploading…");
  $("#import-report").replaceChildren();
  try {
    const body = await send((fraction) => {
      if (fraction === 1) progress("busy", "Importing on the server…");
      else progress(fraction === null ? "busy" : fraction,
        fraction === null ? "Uploading…" : `Uploading… ${Math.round(fraction * 100)}%`);
    });
    const { tasks, created, bad } = summarise(body);
    const lines = [];
    if (tasks.length) {
      lines.push(h("p", {}, `Task${tasks.length === 1 ? "" : "s"} ${idRange(tasks)}: `,
        tasks.slice(0, 5).map((t) => t.name).join(", ") + (tasks.length > 5 ? ", …" : "")));
    }
    if (bad.length) {
      lines.push(h("p", {}, `${plural(bad.length, "row")} refused:`), ...badRowsTable(bad));
    }
    report(bad.length ? "warn" : "ok",
      `Imported ${created} task${created === 1 ? "" : "s"}.`, lines);
    scheduleTasks();
  } catch (error) {
    const { bad } = summarise(error.body || {});
    const details = bad.length
      ? [h("p", {}, `Nothing was imported: ${plural(bad.length, "bad row")}. Fix them and try again.`),
        ...badRowsTable(bad)]
      : [];
    report("error", `Import failed: ${describe(error)}`, details);
  } finally {
    progress(null, "");
    button.disabled = false;
  }
}

function initImport() {
  const tabs = [[$("#tab-json"), $("#import-json")], [$("#tab-csv"), $("#import-csv")]];
  for (const [tab, panel] of tabs) {
    tab.addEventListener("click", () => {
      for (const [other, otherPanel] of tabs) {
        other.setAttribute("aria-selected", String(other === tab));
        otherPanel.hidden = other !== tab;
      }
      panel.querySelector("textarea, input")?.focus();
    });
  }
  $("#import-json-go").addEventListener("click", (event) => {
    const text = $("#import-text").value.trim();
    if (!text) {
      report("error", "Paste one task or a list of tasks as JSON first.");
      return;
    }
    try {
      JSON.parse(text);
    } catch (error) {
      report("error", `That is not valid JSON: ${error.message}`);
      return;
    }
    runImport(event.currentTarget,
      (onProgress) => upload("POST", "/tasks", text, "application/json", onProgress));
  });
  $("#import-csv-go").addEventListener("click", (event) => {
    const file = $("#import-file").files[0];
    if (!file) {
      report("error", "Choose a CSV file first.");
      return;
    }
    const form = new FormData();
    form.append("file", file);
    runImport(event.currentTarget, (onProgress) => upload("POST", "/tasks/import", form, null, onProgress));
  });
}

// --- wiring ---------------------------------------------------------------------------

function init() {
  if (!session) return;
  setText($("#whoami"), `${session.user.username} (${session.user.role})`);
  $("#logout").addEventListener("click", logout);
  initTaskForm();
  initImport();
  initQueueForm();
  initSkillsEditor(() => loadPeople());
  initFormEditor();
  initDrawer(allNames, tasksChanged);
  initResults(allNames);
  initPeople(session.user);
  $("#chart-hours").addEventListener("change", loadChart);
  loadChart();
  const socket = live("/board", $("#conn"));
  socket.on("board", onBoard);
  setInterval(tick, 1000);
  loadTasks();
}

init();
