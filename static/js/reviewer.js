// The reviewer's page. The server pushes work over the /reviewer namespace:
// `task-assigned` (acknowledged at once, once it is on screen), `idle` and
// `task-revoked`. The reviewer answers with `task-complete`.
//
// Never lost, never doubled: Pass/Fail are enabled only while connected, with
// a task on screen and no answer awaiting its ack. An answer whose ack did
// not come (the connection dropped, or a timeout) stays pending and is sent
// again once connected; the server refuses a repeat (409), and the page then
// reads the task back to tell "already saved" from "taken away". An ack that
// arrives for an answer already settled is ignored.
//
// With a review form (`task-assigned`'s `form`, from the task's queue) the
// item comes first, field by field (item.js), and the verdict carries the
// checklist and the fail reasons (verdict.js); a fail that lacks a required
// reason or note is not sent.
import { $, formatClock, formatDuration, parseTime, setText } from "./dom.js";
import { allowedOrigins, renderItem, toggleZoom } from "./item.js";
import { live } from "./live.js";
import { renderPayload } from "./payload.js";
import { api, logout, requireSession } from "./session.js";
import { Verdict } from "./verdict.js";

const ACK_TIMEOUT_MS = 10000;
const GONE = new Set(["task_not_assigned", "not_your_task", "task_not_found"]);
const REVOKED = {
  released: "A supervisor took it back and returned it to the queue.",
  cancelled: "A supervisor cancelled it.",
  expired: "It passed its deadline and was withdrawn.",
  unacknowledged: "This page did not confirm it in time, so it went to someone else and you "
    + "were paused. Press Resume when you are ready.",
};

const session = requireSession(["reviewer"]);

const state = {
  conn: "connecting",
  task: null, // the task on screen
  form: null, // its queue's review form, or null
  idle: null, // "queue-empty" | "paused" | null
  available: null, // null: not known yet (the server tells on idle / on a toggle)
  pending: null, // {task_id, outcome, note, reasons, checklist, attempts, unsure}: awaiting its ack
  problem: "", // why the last answer was not sent or was refused (kept until the next try)
  availabilityBusy: false,
  done: 0,
  said: "", // the last result shown under the buttons ("Saved: #12 passed.")
};

const ui = {
  conn: $("#conn"),
  banner: $("#banner"),
  taskCard: $("#task-card"),
  emptyCard: $("#empty-card"),
  emptyTitle: $("#empty-title"),
  emptyText: $("#empty-text"),
  id: $("#task-id"),
  name: $("#task-name"),
  external: $("#task-external"),
  priority: $("#task-priority"),
  queueBox: $("#task-queue-box"),
  queue: $("#task-queue"),
  age: $("#task-age"),
  held: $("#task-held"),
  deadlineBox: $("#task-deadline-box"),
  deadline: $("#task-deadline"),
  item: $("#item"),
  detailsTitle: $("#details-title"),
  payload: $("#payload"),
  note: $("#note"),
  pass: $("#pass"),
  fail: $("#fail"),
  status: $("#decision-status"),
  pause: $("#pause"),
  done: $("#done-count"),
};

const verdict = new Verdict({
  checklistBox: $("#checklist-box"),
  checklist: $("#checklist"),
  reasonsBox: $("#reasons-box"),
  reasons: $("#reasons"),
  noteHint: $("#note-hint"),
  note: ui.note,
});
const mediaOrigins = allowedOrigins();

let socket = null;
let payloadFor = null; // the task id, payload and form now rendered
let bannerTimer = null;

// --- rendering ----------------------------------------------------------------

function canDecide() {
  return state.conn === "connected" && state.task !== null && state.pending === null;
}

function showBanner(kind, text, seconds = 12) {
  clearTimeout(bannerTimer);
  const banner = ui.banner;
  banner.className = `banner banner-${kind}`;
  banner.replaceChildren();
  const message = document.createElement("span");
  message.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "banner-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => { banner.hidden = true; });
  banner.append(message, close);
  banner.hidden = false;
  if (seconds) bannerTimer = setTimeout(() => { banner.hidden = true; }, seconds * 1000);
}

function renderTask() {
  const task = state.task;
  ui.taskCard.hidden = !task;
  ui.emptyCard.hidden = Boolean(task);
  if (!task) {
    payloadFor = null;
    verdict.clear();
    let title = "Waiting for a task…";
    let text = "Your next task will appear here automatically.";
    if (state.pending) {
      title = "Saving your answer…";
      text = "The next task follows as soon as the server confirms.";
    } else if (state.conn !== "connected" && state.idle === null) {
      title = state.conn === "offline" ? "Offline" : "Connecting…";
      text = "Tasks appear here once the connection is up.";
    } else if (state.idle === "paused") {
      title = "You are paused";
      text = "No new task will come. Press Resume at the top when you are ready.";
    } else if (state.idle === "queue-empty") {
      title = "All done for now";
      text = "The queue is empty. New tasks appear here automatically — no need to reload.";
    }
    setText(ui.emptyTitle, title);
    setText(ui.emptyText, text);
    ui.emptyCard.dataset.state = state.idle || "waiting";
    document.title = `${state.idle === "paused" ? "Paused" : "Waiting"} · Reviewer · qc_live`;
    return;
  }
  setText(ui.id, `#${task.id}`);
  setText(ui.name, task.name);
  setText(ui.external, task.external_id ? `ref ${task.external_id}` : "");
  const level = task.priority > 0 ? "high" : task.priority < 0 ? "low" : "normal";
  ui.priority.className = `badge badge-${level}`;
  setText(ui.priority, `Priority ${task.priority}`);
  ui.queueBox.hidden = !task.queue; // a server without queues sends none
  setText(ui.queue, task.queue || "");
  ui.deadlineBox.hidden = !task.deadline;
  const display = (state.form && state.form.display) || [];
  const payloadKey = `${task.id}:${JSON.stringify(task.payload)}:${JSON.stringify(display)}`;
  if (payloadFor !== payloadKey) { // only when it changed: a re-render would drop a text selection
    ui.item.replaceChildren(...renderItem(display, task.payload, mediaOrigins));
    ui.item.hidden = !display.length;
    const rest = renderPayload(task.payload, new Set(display.map((d) => d.field)));
    ui.payload.replaceChildren(...(rest ? [rest] : []));
    ui.detailsTitle.hidden = !rest;
    setText(ui.detailsTitle, display.length ? "More details" : "Details");
    payloadFor = payloadKey;
  }
  verdict.show(state.form, task.id);
  $("#keys-reasons").hidden = !(state.form && (state.form.fail_reasons || []).length);
  $("#keys-zoom").hidden = !ui.item.querySelector(".pv-image");
  document.title = `#${task.id} ${task.name} · Reviewer · qc_live`;
  tick();
}

function tick() {
  const task = state.task;
  if (!task) return;
  const now = Date.now();
  const created = parseTime(task.created_at);
  const assigned = parseTime(task.assigned_at);
  setText(ui.age, created === null ? "–" : formatDuration((now - created) / 1000));
  setText(ui.held, assigned === null ? "–" : formatDuration((now - assigned) / 1000));
  const due = parseTime(task.deadline);
  if (due !== null) {
    const left = (due - now) / 1000;
    setText(ui.deadline, left >= 0 ? `in ${formatDuration(left)} (${formatClock(task.deadline)})`
      : `overdue (${formatClock(task.deadline)})`);
    ui.deadline.classList.toggle("overdue", left < 0);
  }
}

function renderControls() {
  const ok = canDecide();
  ui.pass.disabled = !ok;
  ui.fail.disabled = !ok;
  ui.note.disabled = !state.task;
  verdict.setDisabled(!state.task || state.pending !== null);
  const paused = state.available === false;
  ui.pause.disabled = state.conn !== "connected" || state.availabilityBusy;
  ui.pause.setAttribute("aria-pressed", String(paused));
  ui.pause.classList.toggle("is-paused", paused);
  setText(ui.pause, state.availabilityBusy ? "…" : paused ? "Resume" : "Pause");
  setText(ui.done, state.done);

  let status = "";
  const pending = state.pending;
  if (pending && state.conn !== "connected") {
    status = `Your ${pending.outcome} for #${pending.task_id} is not confirmed yet; it is sent `
      + "again as soon as the connection is back.";
  } else if (pending) {
    status = `Saving ${pending.outcome} for #${pending.task_id}…`;
  } else if (state.task && state.conn !== "connected") {
    status = "Connection lost: Pass and Fail wait until it is back. Your task is held for you "
      + "for a short while.";
  }
  const problem = !status && state.task ? state.problem : "";
  setText(ui.status, status || problem || state.said);
  ui.status.classList.toggle("warn", Boolean(pending || problem
    || (state.task && state.conn !== "connected")));
}

function render() {
  renderTask();
  renderControls();
}

// --- answering ------------------------------------------------------------------

function decide(outcome) {
  if (!canDecide()) {
    if (state.task && state.conn !== "connected") {
      ui.status.classList.add("shake");
      setTimeout(() => ui.status.classList.remove("shake"), 400);
    }
    return;
  }
  const note = ui.note.value.trim();
  state.problem = verdict.problem(outcome, note) || "";
  if (state.problem) {
    renderControls();
    return;
  }
  state.pending = {
    task_id: state.task.id, outcome, note, attempts: 0, unsure: false,
    reasons: outcome === "fail" ? verdict.reasons() : [], // a pass has no fail reasons
    checklist: verdict.checklist(),
  };
  render();
  send(state.pending);
}

function send(pending) {
  if (!socket.connected) return; // sent again on connect
  pending.attempts += 1;
  const data = { task_id: pending.task_id, outcome: pending.outcome };
  if (pending.note) data.note = pending.note;
  if (pending.reasons.length) data.reasons = pending.reasons;
  if (pending.checklist) data.checklist = pending.checklist;
  socket.timeout(ACK_TIMEOUT_MS).emit("task-complete", data, (err, ack) => {
    if (state.pending !== pending) return; // a stale ack: this answer is settled already
    if (err) {
      // No answer: the socket dropped or the server is slow. A repeat is safe
      // (the server refuses to complete a task twice), so ask again.
      pending.unsure = true;
      if (socket.connected) send(pending);
      render();
      return;
    }
    if (ack && ack.ok) settle(pending, "saved");
    else refused(pending, (ack && ack.error) || {});
  });
}

async function refused(pending, error) {
  if (error.code === "unavailable") {
    state.said = "The server is busy; trying again…";
    render();
    setTimeout(() => { if (state.pending === pending) send(pending); }, 2000);
    return;
  }
  if (error.code === "invalid_verdict") {
    // The form changed under the page, or it let through what the server does
    // not: the task stays on screen with the server's reason.
    state.pending = null;
    state.problem = `Not saved: ${error.message || "the verdict does not fit this queue's form"}`;
    render();
    return;
  }
  if (GONE.has(error.code)) {
    // Either an earlier attempt of ours got through (and its ack was lost),
    // or the task was taken away meanwhile: the task itself tells.
    let task = null;
    try {
      task = await api("GET", `/tasks/${pending.task_id}`);
    } catch {
      /* gone or unreachable: treat as not ours */
    }
    if (state.pending !== pending) return;
    if (task && task.status === "completed" && task.assignee_id === session.user.id) {
      settle(pending, task.outcome === pending.outcome ? "saved" : "elsewhere", task);
    } else {
      settle(pending, "lost", task);
    }
    return;
  }
  settle(pending, "error", error);
}

function settle(pending, how, detail) {
  state.pending = null;
  state.problem = "";
  const id = pending.task_id;
  const onScreen = state.task && state.task.id === id;
  if (how === "saved") {
    state.done += 1;
    state.said = `Saved: #${id} ${pending.outcome === "pass" ? "passed" : "failed"}.`;
  } else if (how === "elsewhere") {
    state.said = "";
    showBanner("info", `Task #${id} was already completed (${detail.outcome}) from another tab `
      + "or device.");
  } else if (how === "lost") {
    state.said = "";
    const status = detail && detail.status ? ` (it is now ${detail.status})` : "";
    showBanner("warn", `Your ${pending.outcome} for task #${id} was not recorded: the task is no `
      + `longer yours${status}.`, 0);
  } else {
    state.said = "";
    showBanner("error", `Could not save your answer: ${detail.message || "unknown error"}`, 0);
  }
  if (onScreen && how !== "error") {
    state.task = null;
    state.form = null;
    ui.note.value = "";
  }
  render();
}

// --- pushes from the server ----------------------------------------------------

function onTaskAssigned(data, ack) {
  const task = data && data.task;
  if (task && typeof task.id === "number") {
    if (!state.task || state.task.id !== task.id) {
      ui.note.value = "";
      state.problem = "";
    }
    state.task = task;
    state.form = data.form || null;
    state.idle = null;
    render();
  }
  // On screen now: acknowledge, or the server hands the task to someone else.
  if (typeof ack === "function") ack({ ok: true });
}

function onIdle(data) {
  const reason = data && data.reason;
  state.idle = reason || "queue-empty";
  if (reason === "paused") state.available = false;
  else if (reason === "queue-empty") state.available = true;
  if (state.task && !(state.pending && state.pending.task_id === state.task.id)) {
    state.task = null;
    state.form = null;
  }
  render();
}

function onTaskRevoked(data) {
  const id = data && data.task_id;
  const onScreen = state.task && state.task.id === id;
  const answering = state.pending && state.pending.task_id === id;
  if (!onScreen && !answering) return;
  const reason = (data && data.reason) || "released";
  if (onScreen) {
    state.task = null;
    state.form = null;
    ui.note.value = "";
  }
  if (answering) state.pending = null;
  if (reason === "unacknowledged") state.available = false;
  const why = REVOKED[reason] || `It was taken back (${reason}).`;
  showBanner("warn", `Task #${id} is no longer yours. ${why}`
    + (answering ? " Your answer was not recorded." : ""), 0);
  state.said = "";
  render();
}

function toggleAvailability() {
  if (!socket.connected || state.availabilityBusy) return;
  const available = state.available === false; // paused -> resume
  state.availabilityBusy = true;
  render();
  socket.timeout(ACK_TIMEOUT_MS).emit("set-availability", { available }, (err, ack) => {
    state.availabilityBusy = false;
    if (err) {
      showBanner("error", `Could not ${available ? "resume" : "pause"}: no answer from the server. `
        + "Try again.");
    } else if (ack && ack.ok) {
      state.available = ack.available;
      if (!ack.available) {
        showBanner("info", state.task
          ? "Paused. Finish this task; no new one comes until you resume."
          : "Paused. No new task comes until you resume.");
      } else {
        ui.banner.hidden = true;
      }
    } else {
      const why = (ack && ack.error && ack.error.message) || "refused";
      showBanner("error", `Could not change availability: ${why}`);
    }
    render();
  });
}

// --- wiring -----------------------------------------------------------------------

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.key === "Escape" && event.target === ui.note) {
    ui.note.blur();
    return;
  }
  if (event.target.closest && event.target.closest(
    "input:not([type=checkbox]):not([type=radio]), textarea, select, [contenteditable]")) {
    return; // typing a note: letters are letters, Enter is a new line
  }
  const key = event.key.toLowerCase();
  if (/^[1-9]$/.test(key) && state.task && state.pending === null) {
    if (verdict.toggle(Number(key))) event.preventDefault();
  } else if (key === "z" && state.task) {
    const figure = (event.target.closest && event.target.closest(".pv-image"))
      || ui.item.querySelector(".pv-image");
    if (figure) {
      event.preventDefault();
      toggleZoom(figure);
    }
  } else if (key === "p") {
    event.preventDefault();
    decide("pass");
  } else if (key === "f") {
    event.preventDefault();
    decide("fail");
  } else if (key === "n" && state.task) {
    event.preventDefault();
    ui.note.focus();
  }
}

function init() {
  if (!session) return;
  setText($("#whoami"), session.user.username);
  $("#logout").addEventListener("click", logout);
  ui.pass.addEventListener("click", () => decide("pass"));
  ui.fail.addEventListener("click", () => decide("fail"));
  ui.note.addEventListener("input", () => ui.note.classList.remove("needs-answer"));
  ui.pause.addEventListener("click", toggleAvailability);
  document.addEventListener("keydown", onKey);

  socket = live("/reviewer", ui.conn, (conn) => {
    state.conn = conn;
    render();
  });
  socket.on("connect", () => {
    // An answer that never got its ack goes again (a repeat is refused, not doubled).
    if (state.pending) send(state.pending);
  });
  socket.on("task-assigned", onTaskAssigned);
  socket.on("idle", onIdle);
  socket.on("task-revoked", onTaskRevoked);
  setInterval(tick, 1000);
  render();
}

init();
