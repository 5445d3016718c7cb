// The task drawer: click a task anywhere on the board and its fields,
// payload, verdict and history (GET /tasks/<id>, GET /tasks/<id>/history)
// open in a side panel, with the board's actions on it (release, cancel,
// reprioritise: the same REST calls as the task list).
import { $, formatDuration, h, parseTime, setText } from "./dom.js";
import { act, describe } from "./feedback.js";
import { api } from "./session.js";

let current = null; // the task id on show
let names = () => new Map(); // reviewer id -> username, from the board
let changed = () => {};

function when(iso) {
  const t = parseTime(iso);
  return t === null ? "–" : new Date(t).toLocaleString([], {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function person(id) {
  if (id === null || id === undefined) return "–";
  return names().get(id) || `#${id}`;
}

/** How long a completed task was in the reviewer's hands (assigned -> completed). */
export function handlingSeconds(task) {
  const start = parseTime(task.assigned_at);
  const end = parseTime(task.completed_at);
  return start === null || end === null ? null : (end - start) / 1000;
}

function field(label, value, key) {
  return [h("dt", {}, label), h("dd", { dataset: { field: key } }, value)];
}

function payloadView(payload) {
  const entries = Object.entries(payload || {});
  if (!entries.length) return h("p", { class: "muted small" }, "No payload.");
  return h("table", { class: "kv drawer-payload" }, h("tbody", {}, entries.map(([key, value]) =>
    h("tr", {}, h("th", {}, key),
      h("td", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2))))));
}

function verdictView(task) {
  if (task.status !== "completed") return null;
  const checklist = Object.entries(task.checklist || {});
  return h("section", { class: "drawer-verdict", dataset: { outcome: task.outcome || "" } },
    h("h3", {}, "Verdict"),
    h("p", {}, h("span", { class: `pill pill-outcome-${task.outcome}` }, task.outcome || "–"),
      " by ", person(task.assignee_id), " · handled in ",
      formatDuration(handlingSeconds(task))),
    task.reasons && task.reasons.length
      ? h("p", { class: "drawer-reasons" }, "Reasons: ",
        task.reasons.map((code) => h("code", { class: "reason" }, code)))
      : null,
    task.note ? h("p", { class: "drawer-note" }, task.note) : null,
    checklist.length ? h("ul", { class: "drawer-checklist" }, checklist.map(([id, ok]) =>
      h("li", {}, `${ok ? "✓" : "✗"} ${id}`))) : null);
}

function eventDetail(event) {
  const detail = event.detail;
  if (!detail || typeof detail !== "object" || !Object.keys(detail).length) return null;
  return h("span", { class: "muted small event-detail" }, Object.entries(detail)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(" · "));
}

function historyView(events) {
  return h("section", { class: "drawer-history" }, h("h3", {}, "History"),
    h("ol", { id: "drawer-events", class: "events" }, events.map((event) =>
      h("li", { dataset: { kind: event.kind } },
        h("span", { class: "event-kind" }, event.kind),
        h("span", { class: "tabular small" }, when(event.at)),
        event.reviewer_id ? h("span", { class: "small" }, `reviewer ${person(event.reviewer_id)}`) : null,
        event.actor_id && event.actor_id !== event.reviewer_id
          ? h("span", { class: "small muted" }, `by ${person(event.actor_id)}`) : null,
        eventDetail(event)))));
}

function actionsView(task) {
  const live = task.status === "pending" || task.status === "assigned";
  if (!live) return null;
  const buttons = [];
  if (task.status === "assigned") {
    const release = h("button", { type: "button", class: "btn btn-small", id: "drawer-release" }, "Release");
    release.addEventListener("click", () => run(release, () => api("POST", `/tasks/${task.id}/release`),
      `Task #${task.id} went back to the queue.`));
    buttons.push(release);
  }
  const cancel = h("button", { type: "button", class: "btn btn-small btn-danger-ghost", id: "drawer-cancel" },
    "Cancel task");
  let armed = null;
  cancel.addEventListener("click", () => {
    if (!armed) {
      cancel.textContent = "Sure?";
      cancel.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        cancel.textContent = "Cancel task";
        cancel.classList.remove("armed");
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    run(cancel, () => api("PATCH", `/tasks/${task.id}`, { status: "cancelled" }),
      `Task #${task.id} was cancelled.`);
  });
  buttons.push(cancel);
  const priority = h("input", { type: "number", id: "drawer-priority", value: task.priority,
    class: "priority-input", "aria-label": `Priority of task ${task.id}` });
  const set = h("button", { type: "button", class: "btn btn-small", id: "drawer-set-priority" }, "Set priority");
  set.addEventListener("click", () => {
    const value = Number(priority.value);
    if (priority.value === "" || !Number.isInteger(value)) {
      setText($("#drawer-error"), "The priority must be a whole number.");
      return;
    }
    run(set, () => api("PATCH", `/tasks/${task.id}`, { priority: value }),
      `Task #${task.id} now has priority ${value}.`);
  });
  return h("div", { class: "drawer-actions" }, buttons, h("span", { class: "priority-edit" }, priority, set));
}

async function run(button, work, done) {
  setText($("#drawer-error"), "");
  const id = current;
  const result = await act(button, work, done);
  if (result !== null) changed();
  if (current === id) openTask(id);
}

/** Open (or refresh) the drawer on task `id`. */
export async function openTask(id) {
  current = id;
  const drawer = $("#drawer");
  drawer.hidden = false;
  drawer.dataset.task = id;
  document.body.classList.add("drawer-open");
  setText($("#drawer-title"), `Task #${id}`);
  setText($("#drawer-error"), "");
  let task;
  let history;
  try {
    [task, history] = await Promise.all([api("GET", `/tasks/${id}`), api("GET", `/tasks/${id}/history`)]);
  } catch (error) {
    if (current !== id) return;
    $("#drawer-body").replaceChildren();
    setText($("#drawer-error"), `Could not load task #${id}: ${describe(error)}`);
    return;
  }
  if (current !== id) return; // another task was opened meanwhile
  drawer.dataset.status = task.status;
  setText($("#drawer-title"), `Task #${task.id} · ${task.name}`);
  $("#drawer-body").replaceChildren(...[
    h("dl", { class: "drawer-fields" },
      field("Status", h("span", { class: `pill pill-task-${task.status}` }, task.status), "status"),
      field("Queue", task.queue ?? "–", "queue"),
      field("Priority", task.priority, "priority"),
      field("External id", task.external_id ?? "–", "external_id"),
      field("Reviewer", person(task.assignee_id), "reviewer"),
      field("Created", when(task.created_at), "created_at"),
      field("Assigned", when(task.assigned_at), "assigned_at"),
      field("Completed", when(task.completed_at), "completed_at"),
      field("Deadline", when(task.deadline), "deadline"),
      // Supervisors' fields of second reviews and gold tasks (docs/api.md).
      task.kind === "audit" ? field("Second review of", taskLink(task.review_of), "review_of") : null,
      task.expected_outcome ? field("Gold answer", task.expected_outcome, "expected_outcome") : null,
      task.audit ? field("Audit", task.audit, "audit") : null,
      task.finalized_at
        ? field("Final verdict", `${task.final_outcome ?? "–"}${task.final_note ? ` · ${task.final_note}` : ""}`
          + ` (${when(task.finalized_at)})`, "final")
        : null),
    actionsView(task),
    verdictView(task),
    h("section", {}, h("h3", {}, "Payload"), payloadView(task.payload)),
    historyView(history.events || [])].filter(Boolean));
  $("#drawer-close").focus({ preventScroll: true });
}

export function closeDrawer() {
  current = null;
  $("#drawer").hidden = true;
  document.body.classList.remove("drawer-open");
}

/** `reviewerNames()`: id -> username now; `onChanged()`: after an action changed a task. */
export function initDrawer(reviewerNames, onChanged) {
  names = reviewerNames;
  changed = onChanged;
  $("#drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && current !== null) closeDrawer();
  });
}

/** A button that opens the drawer on `task` (its number and, if given, a label). */
export function taskLink(taskId, label) {
  const button = h("button", { type: "button", class: "link-button task-link", dataset: { openTask: taskId },
    title: `Open task #${taskId}` }, label ?? `#${taskId}`);
  button.addEventListener("click", () => openTask(taskId));
  return button;
}
