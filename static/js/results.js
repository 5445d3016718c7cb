// The results view (completed tasks, newest completion first, with outcome,
// reasons, note, reviewer and handling time; filtered by queue, outcome,
// reviewer and time range) and the task search. Both read GET /tasks:
// order_by=-completed_at with the completion window, and q= (external_id
// exactly or the start of a name). Every value is set as text.
import { $, formatClock, formatDuration, h, setText } from "./dom.js";
import { handlingSeconds, openTask, taskLink } from "./drawer.js";
import { describe } from "./feedback.js";
import { api } from "./session.js";

const PAGE = 50;
const SEARCH_LIMIT = 20;

const state = {
  cursor: null, // next page of the results shown
  loading: false,
  again: false, // a reload was asked while one ran
  names: () => new Map(),
  labels: new Map(), // "queue/code" -> the fail reason's label in that queue's form
};

/** Read the queues' fail reason labels (GET /queues); codes show as they are until then. */
export async function loadReasonLabels() {
  try {
    const body = await api("GET", "/queues");
    state.labels = new Map((body.queues || []).flatMap((q) => ((q.form && q.form.fail_reasons) || [])
      .map((r) => [`${q.name}/${r.code}`, r.label])));
  } catch {
    return; // the codes stay readable on their own
  }
  for (const chip of document.querySelectorAll("#results code.reason")) {
    const label = state.labels.get(chip.dataset.key);
    chip.title = label && label !== chip.textContent ? label : "";
  }
}

function reasonChip(queue, code) {
  const key = `${queue}/${code}`;
  const label = state.labels.get(key);
  return h("code", { class: "reason", dataset: { key }, title: label && label !== code ? label : null },
    code);
}

/** A datetime-local value (local time) as an ISO instant, or null. */
function instant(value) {
  if (!value) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

function filterQuery() {
  const params = new URLSearchParams({ status: "completed", order_by: "-completed_at", limit: PAGE });
  const queue = $("#results-queue").value;
  const outcome = $("#results-outcome").value;
  const reviewer = $("#results-reviewer").value;
  const range = $("#results-range").value;
  if (queue) params.set("queue", queue);
  if (outcome) params.set("outcome", outcome);
  if (reviewer) params.set("assignee_id", reviewer);
  if (range === "custom") {
    const from = instant($("#results-from").value);
    const to = instant($("#results-to").value);
    if (from) params.set("completed_after", from);
    if (to) params.set("completed_before", to);
  } else if (range) {
    params.set("completed_after", new Date(Date.now() - Number(range) * 3600000).toISOString());
  }
  return params;
}

function reviewerName(id) {
  if (id === null || id === undefined) return "–";
  return state.names().get(id) || `#${id}`;
}

function resultRow(task) {
  return h("tr", { dataset: { task: task.id, outcome: task.outcome || "" } },
    h("td", { class: "tabular" }, taskLink(task.id)),
    h("td", { class: "name" }, taskLink(task.id, task.name),
      task.external_id ? h("span", { class: "muted small ext-id" }, ` ${task.external_id}`) : null),
    h("td", { class: "task-queue" }, task.queue ?? "–"),
    h("td", {}, h("span", { class: `pill pill-outcome-${task.outcome}` }, task.outcome || "–")),
    h("td", { class: "reasons" }, (task.reasons || []).map((code) => reasonChip(task.queue, code))),
    h("td", { class: "note" }, task.note || ""),
    h("td", { class: "result-reviewer", dataset: { assignee: task.assignee_id ?? "" } },
      reviewerName(task.assignee_id)),
    h("td", { class: "num tabular handled" }, formatDuration(handlingSeconds(task))),
    h("td", { class: "tabular" }, formatClock(task.completed_at)));
}

/** Read the results again from the first page (`more`: the next page, appended). */
export async function loadResults(more = false) {
  if (state.loading) {
    if (!more) state.again = true;
    return;
  }
  state.loading = true;
  const params = filterQuery();
  if (more && state.cursor) params.set("cursor", state.cursor);
  const error = $("#results-error");
  try {
    const body = await api("GET", `/tasks?${params}`);
    setText(error, "");
    const rows = (body.tasks || []).map(resultRow);
    const tbody = $("#results tbody");
    if (more) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    state.cursor = body.next_cursor;
    $("#results-more").hidden = !body.next_cursor;
    const shown = tbody.children.length;
    $("#results-empty").hidden = shown > 0;
    setText($("#results-summary"), `${shown}${body.next_cursor ? "+" : ""} completed`);
  } catch (problem) {
    setText(error, `Could not load the results: ${describe(problem)}`);
  } finally {
    state.loading = false;
    if (state.again) {
      state.again = false;
      loadResults();
    }
  }
}

/** Name the reviewers of the rows shown again (names arrive with the snapshot and GET /users). */
export function renameReviewers() {
  for (const cell of document.querySelectorAll("#results td.result-reviewer")) {
    const id = cell.dataset.assignee;
    setText(cell, id ? reviewerName(Number(id)) : "–");
  }
}

/** Keep the queue and reviewer filters' options in step with the floor. */
export function syncResultFilters(queues, reviewers) {
  const fill = (select, items) => {
    const key = JSON.stringify(items);
    if (select.dataset.key === key) return;
    select.dataset.key = key;
    const chosen = select.value;
    const first = select.options[0];
    select.replaceChildren(first, ...items.map(([value, label]) => h("option", { value }, label)));
    select.value = items.some(([value]) => String(value) === chosen) ? chosen : "";
  };
  if (Array.isArray(queues)) fill($("#results-queue"), queues.map((q) => [q.name, q.name]));
  if (Array.isArray(reviewers)) {
    fill($("#results-reviewer"), [...reviewers].sort((a, b) => a.username.localeCompare(b.username))
      .map((r) => [String(r.id), r.username]));
  }
}

// --- search ------------------------------------------------------------------------------

function searchHit(task) {
  const open = h("button", { type: "button", class: "search-hit", dataset: { task: task.id } },
    h("span", { class: "tabular muted" }, `#${task.id}`),
    h("span", { class: "search-name" }, task.name),
    task.external_id ? h("code", {}, task.external_id) : null,
    h("span", { class: `pill pill-task-${task.status}` }, task.status));
  open.addEventListener("click", () => {
    $("#search-results").hidden = true;
    openTask(task.id);
  });
  return open;
}

async function search(text) {
  const box = $("#search-results");
  const found = new Map();
  const asks = [api("GET", `/tasks?${new URLSearchParams({ q: text, order_by: "-created_at",
    limit: SEARCH_LIMIT })}`).then((body) => body.tasks || [])];
  const number = /^#?(\d{1,15})$/.exec(text);
  if (number) {
    asks.unshift(api("GET", `/tasks/${number[1]}`).then((task) => [task], (error) => {
      if (error.status === 404) return [];
      throw error;
    }));
  }
  let lists;
  try {
    lists = await Promise.all(asks);
  } catch (problem) {
    box.replaceChildren(h("p", { class: "form-error" }, `Search failed: ${describe(problem)}`));
    box.hidden = false;
    return;
  }
  for (const task of lists.flat()) found.set(task.id, task);
  box.replaceChildren(
    h("p", { class: "muted small" }, found.size
      ? `${found.size} task${found.size === 1 ? "" : "s"} for “${text}”`
      : `No task has the external_id “${text}” or a name beginning with it.`),
    ...[...found.values()].map(searchHit));
  box.hidden = false;
}

export function initResults(reviewerNames) {
  state.names = reviewerNames;
  $("#results-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadResults();
  });
  for (const id of ["#results-queue", "#results-outcome", "#results-reviewer"]) {
    $(id).addEventListener("change", () => loadResults());
  }
  $("#results-range").addEventListener("change", (event) => {
    $("#results-custom").hidden = event.target.value !== "custom";
    if (event.target.value !== "custom") loadResults();
  });
  $("#results-more").addEventListener("click", () => loadResults(true));
  loadReasonLabels();
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("#search").value.trim();
    if (!text) {
      $("#search-results").hidden = true;
      return;
    }
    search(text);
  });
  $("#search").addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("#search-results").hidden = true;
  });
  loadResults();
}
