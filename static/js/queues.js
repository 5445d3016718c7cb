// Queues and skills on the board: a tile per queue (from the snapshot's
// `queues`), the queue filter of the task list, the form that creates a queue
// (POST /queues), the skills editor of a reviewer (PATCH /users/<id> with
// `skills`) and why a pending task waits (`waiting` of GET /tasks/<id>).
// Every figure and name is set as text.
import { $, formatDuration, h, setText } from "./dom.js";
import { describe, toast } from "./feedback.js";
import { editForm } from "./formeditor.js";
import { api } from "./session.js";

export const MAX_LEVEL = 10;
const REASON_TTL_MS = 5000; // the list reloads on every change of the floor: ask at most this often

const tiles = new Map(); // queue name -> {li, rule, about, alert, figures, queue}
let known = []; // the queues of the last snapshot
let editing = null; // the reviewer whose skills are in the editor
let skillsSaved = () => {}; // told after a save (the people list reads again)
const reasons = new Map(); // task id -> {task, at}: recent answers of GET /tasks/<id>

function span(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 360) / 10} h`;
}

/** "needs level 3 · any level after 5 min": the queue's rule for a person. */
function ruleText(queue) {
  const level = queue.min_level || 1;
  const parts = [level > 1 ? `needs level ${level}` : "any level"];
  if (level > 1 && queue.relax_after_s !== null && queue.relax_after_s !== undefined) {
    parts.push(`any level after ${span(queue.relax_after_s)}`);
  }
  return parts.join(" · ");
}

/** Work waiting that no qualified reviewer online can take. */
export function unattended(queue) {
  return queue.pending > 0 && !queue.online_qualified;
}

function figure(label, key) {
  const value = h("dd", { dataset: { figure: key } }, "–");
  return [h("div", {}, h("dt", {}, label), value), value];
}

function tile(queue, onPick) {
  let entry = tiles.get(queue.name);
  if (entry) return entry;
  const [pending, pendingValue] = figure("Pending", "pending");
  const [assigned, assignedValue] = figure("Assigned", "assigned");
  const [oldest, oldestValue] = figure("Oldest", "oldest");
  const [online, onlineValue] = figure("Qualified online", "online");
  const show = h("button", { type: "button", class: "btn btn-small btn-ghost queue-show",
    "aria-label": `Show the tasks of queue ${queue.name}` }, "Tasks");
  show.addEventListener("click", () => onPick(queue.name));
  const edit = h("button", { type: "button", class: "btn btn-small btn-ghost queue-edit",
    "aria-label": `Edit queue ${queue.name}` }, "Edit");
  edit.addEventListener("click", () => editQueue(tiles.get(queue.name).queue));
  const form = h("button", { type: "button", class: "btn btn-small btn-ghost queue-form-edit",
    "aria-label": `Edit the review form of queue ${queue.name}` }, "Form");
  form.addEventListener("click", () => editForm(queue.name));
  const rule = h("span", { class: "muted small queue-rule" });
  const about = h("span", { class: "small queue-about" });
  const alert = h("p", { class: "queue-alert", role: "status" });
  const li = h("li", { class: "queue-tile", dataset: { queue: queue.name } },
    h("div", { class: "queue-tile-head" },
      h("strong", { class: "queue-name" }, queue.name), h("span", {}, edit, form, show)),
    about, rule,
    h("dl", { class: "queue-figures" }, pending, assigned, oldest, online),
    alert);
  entry = { li, rule, about, alert, figures: { pending: pendingValue, assigned: assignedValue,
    oldest: oldestValue, online: onlineValue }, queue };
  tiles.set(queue.name, entry);
  return entry;
}

/**
 * Draw the tiles of `snap.queues` and keep the queue filter's options in step.
 * Queues with pending work and no qualified reviewer online are flagged (and
 * listed first, so they cannot scroll out of sight).
 */
export function renderQueues(snap, onPick) {
  const section = $("#queues-card");
  if (!Array.isArray(snap.queues)) {
    section.hidden = true; // a server without queues
    return;
  }
  section.hidden = false;
  known = snap.queues;
  const list = $("#queue-tiles");
  const ordered = [...snap.queues].sort((a, b) => Number(unattended(b)) - Number(unattended(a)));
  const seen = new Set();
  let flagged = 0;
  ordered.forEach((queue, index) => {
    seen.add(queue.name);
    const entry = tile(queue, onPick);
    entry.queue = queue;
    const alone = unattended(queue);
    if (alone) flagged += 1;
    entry.li.classList.toggle("queue-tile-alert", alone);
    entry.li.dataset.unattended = String(alone);
    setText(entry.rule, ruleText(queue));
    setText(entry.about, queue.description || "");
    entry.about.title = queue.description || "";
    entry.about.hidden = !queue.description;
    setText(entry.figures.pending, queue.pending);
    setText(entry.figures.assigned, queue.assigned);
    setText(entry.figures.online, queue.online_qualified);
    setText(entry.alert, alone ? "Work waiting, no qualified reviewer online" : "");
    entry.alert.hidden = !alone;
    if (list.children[index] !== entry.li) list.insertBefore(entry.li, list.children[index] || null);
  });
  for (const [name, entry] of tiles) {
    if (!seen.has(name)) {
      entry.li.remove();
      tiles.delete(name);
    }
  }
  setText($("#queues-summary"), flagged
    ? `${flagged} with work and no qualified reviewer online`
    : `${snap.queues.length} queue${snap.queues.length === 1 ? "" : "s"}`);
  $("#queues-summary").classList.toggle("warn", flagged > 0);
  syncFilter();
}

/** The oldest pending age of each tile, `elapsed` seconds after the snapshot. */
export function tickQueues(elapsed) {
  for (const entry of tiles.values()) {
    const age = entry.queue.oldest_pending_age_s;
    setText(entry.figures.oldest, age === null || age === undefined ? "–" : formatDuration(age + elapsed));
  }
}

function syncFilter() {
  const select = $("#tasks-queue");
  const names = known.map((q) => q.name);
  const key = JSON.stringify(names);
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const chosen = select.value;
  const options = [h("option", { value: "" }, "All queues"),
    ...names.map((name) => h("option", { value: name }, name))];
  if (chosen && !names.includes(chosen)) options.push(h("option", { value: chosen }, chosen));
  select.replaceChildren(...options);
  select.value = chosen;
  $("#tasks-queue-box").hidden = false;
}

// --- creating and editing a queue (POST /queues, PATCH /queues/<name>) ----------------

function numberField(input, label, { min, max } = {}) {
  if (input.validity.badInput) throw new Error(`${label} must be a whole number.`);
  if (input.value.trim() === "") return undefined;
  const value = Number(input.value);
  if (!Number.isInteger(value)) throw new Error(`${label} must be a whole number.`);
  if (min !== undefined && value < min) throw new Error(`${label} must be at least ${min}.`);
  if (max !== undefined && value > max) throw new Error(`${label} must be at most ${max}.`);
  return value;
}

let editingQueue = null; // the queue's name while the form edits one

// Fields another module adds to the queue form (quality.js: audit_rate), each
// {node, load(queue), read(body, editing)}; read throws an Error for a person.
const extraFields = [];

export function addQueueField(field) {
  extraFields.push(field);
  $("#queue-form-go").before(field.node);
}

function resetQueueForm() {
  editingQueue = null;
  $("#queue-form").reset();
  $("#queue-name").readOnly = false;
  setText($("#queue-form-mode"), "New queue:");
  setText($("#queue-form-go"), "Create queue");
  $("#queue-form-cancel").hidden = true;
  setText($("#queue-form-error"), "");
}

/** Load a queue into the form: PATCH /queues/<name> on submit. */
function editQueue(queue) {
  editingQueue = queue.name;
  $("#queue-name").value = queue.name;
  $("#queue-name").readOnly = true;
  $("#queue-description").value = queue.description || "";
  $("#queue-min-level").value = queue.min_level ?? "";
  $("#queue-relax").value = queue.relax_after_s ?? "";
  for (const field of extraFields) field.load(queue);
  setText($("#queue-form-mode"), `Edit queue ${queue.name}:`);
  setText($("#queue-form-go"), "Save queue");
  $("#queue-form-cancel").hidden = false;
  setText($("#queue-form-error"), "");
  $("#queue-description").focus();
}

export function initQueueForm() {
  const form = $("#queue-form");
  const error = $("#queue-form-error");
  const button = $("#queue-form-go");
  $("#queue-form-cancel").addEventListener("click", resetQueueForm);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setText(error, "");
    const name = editingQueue || $("#queue-name").value.trim();
    const body = {};
    try {
      if (!name) throw new Error("Give the queue a name.");
      const description = $("#queue-description").value.trim();
      if (description || editingQueue) body.description = description;
      const level = numberField($("#queue-min-level"), "The minimum level", { min: 1, max: MAX_LEVEL });
      if (level !== undefined) body.min_level = level;
      const relax = numberField($("#queue-relax"), "“Any level after”", { min: 0 });
      if (relax !== undefined) body.relax_after_s = relax;
      else if (editingQueue) body.relax_after_s = null; // blank: never relaxes
      for (const field of extraFields) field.read(body, editingQueue);
    } catch (problem) {
      setText(error, problem.message);
      return;
    }
    button.disabled = true;
    const editing = editingQueue;
    try {
      if (editing) {
        await api("PATCH", `/queues/${encodeURIComponent(editing)}`, body);
        toast("ok", `Queue ${editing} saved.`);
      } else {
        const queue = await api("POST", "/queues", { name, ...body });
        toast("ok", `Queue ${queue.name || name} created.`);
      }
      resetQueueForm();
    } catch (problem) {
      setText(error, `Could not ${editing ? "save" : "create"} the queue: ${describe(problem)}`);
      toast("error", describe(problem));
    } finally {
      button.disabled = false;
    }
  });
}

// --- a reviewer's skills ----------------------------------------------------------------

function sortedSkills(skills) {
  return Object.entries(skills || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/** A reviewer's skills as chips ("default 1", "fruit 7"); null when the server has none. */
export function skillChips(skills) {
  if (!skills || typeof skills !== "object") return null;
  const entries = sortedSkills(skills);
  if (!entries.length) return h("span", { class: "skills muted small" }, "no skills");
  return h("span", { class: "skills" }, entries.map(([queue, level]) =>
    h("span", { class: "skill", dataset: { queue }, title: `level ${level} in ${queue}` },
      `${queue} `, h("b", {}, level))));
}

/** Open the skills editor on `reviewer` (a snapshot row): one level per queue. */
export function editSkills(reviewer) {
  editing = { id: reviewer.id, username: reviewer.username };
  const skills = reviewer.skills || {};
  const names = known.map((q) => q.name);
  for (const name of Object.keys(skills)) if (!names.includes(name)) names.push(name);
  const rows = names.map((name) => {
    const queue = known.find((q) => q.name === name);
    const id = `skill-${names.indexOf(name)}`;
    return h("div", { class: "skill-row", dataset: { queue: name } },
      h("label", { for: id }, name,
        queue && queue.min_level > 1 ? h("span", { class: "muted small" }, ` needs ${queue.min_level}`) : null),
      h("input", { id, type: "number", min: 1, max: MAX_LEVEL, step: 1, inputmode: "numeric",
        value: skills[name] ?? "", placeholder: "–", dataset: { queue: name },
        "aria-label": `Level of ${reviewer.username} in ${name}` }));
  });
  setText($("#skills-title"), `Skills of ${reviewer.username}`);
  setText($("#skills-error"), "");
  $("#skills-levels").replaceChildren(...rows);
  const editor = $("#skills-editor");
  editor.dataset.reviewer = reviewer.username;
  editor.hidden = false;
  editor.scrollIntoView({ block: "nearest" });
  editor.querySelector("input")?.focus({ preventScroll: true });
}

function closeSkills() {
  editing = null;
  $("#skills-editor").hidden = true;
}

/** The levels typed in the editor; throws with a message for a person. */
function typedSkills() {
  const skills = {};
  for (const input of $("#skills-levels").querySelectorAll("input")) {
    const name = input.dataset.queue;
    if (input.validity.badInput || (input.value.trim() !== "" && Number.isNaN(Number(input.value)))) {
      throw new Error(`The level in ${name} is not a number.`);
    }
    // Range and whole numbers are the server's to judge: its answer is shown.
    if (input.value.trim() !== "") skills[name] = Number(input.value);
  }
  return skills;
}

export function initSkillsEditor(onSaved = () => {}) {
  skillsSaved = onSaved;
  const editor = $("#skills-editor");
  const error = $("#skills-error");
  const save = $("#skills-save");
  $("#skills-close").addEventListener("click", closeSkills);
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeSkills();
  });
  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!editing) return;
    const who = editing;
    setText(error, "");
    let skills;
    try {
      skills = typedSkills();
    } catch (problem) {
      setText(error, problem.message);
      return;
    }
    save.disabled = true;
    try {
      const user = await api("PATCH", `/users/${who.id}`, { skills });
      const now = sortedSkills(user && user.skills ? user.skills : skills)
        .map(([queue, level]) => `${queue} ${level}`).join(", ");
      toast("ok", `${who.username}'s skills: ${now || "none"}.`);
      skillsSaved();
      if (editing === who) closeSkills();
    } catch (problem) {
      // Kept on screen with what was typed: nothing is dropped silently.
      if (editing === who) setText(error, `Not saved: ${describe(problem)}`);
      toast("error", `${who.username}'s skills were not saved: ${describe(problem)}`);
    } finally {
      save.disabled = false;
    }
  });
}

// --- why a pending task waits (GET /tasks/<id> `waiting`) ----------------------------------

/** `waiting` as a sentence, whatever its shape (a string, or {message|reason|code}). */
export function waitingText(waiting) {
  if (waiting === null || waiting === undefined) return "Nothing holds it back: it goes to the next free qualified reviewer.";
  if (typeof waiting === "string") return waiting;
  return waiting.message || waiting.detail || waiting.reason || waiting.code || JSON.stringify(waiting);
}

/**
 * The detail line under a pending task: the reason if the task carries one,
 * otherwise asked of GET /tasks/<id> at once (`auto`, for the head of the
 * list) or by a "Why waiting?" button.
 */
export function waitingLine(task, auto = false) {
  const line = h("span", { class: "task-waiting small", dataset: { waitingFor: task.id } });
  const say = (text, warn = false) => {
    line.replaceChildren(h("span", { class: `waiting-reason${warn ? " warn" : ""}` }, text));
    line.title = text;
  };
  const show = (waiting) => {
    say(waitingText(waiting));
    line.dataset.code = waiting && typeof waiting === "object" ? waiting.code || waiting.reason || "" : "";
  };
  if ("waiting" in task) {
    show(task.waiting);
    return line;
  }
  const button = h("button", { type: "button", class: "link-button" }, "Why waiting?");
  const ask = async (recent = false) => {
    button.disabled = true;
    setText(button, "Asking why…");
    try {
      const now = Date.now();
      for (const [id, seen] of reasons) if (now - seen.at > REASON_TTL_MS) reasons.delete(id);
      let fresh = recent && reasons.has(task.id) ? reasons.get(task.id).task : null;
      if (!fresh) {
        fresh = await api("GET", `/tasks/${task.id}`);
        reasons.set(task.id, { task: fresh, at: Date.now() });
      }
      if (fresh.status !== "pending") say(`Not waiting any more: ${fresh.status}.`);
      else if (!("waiting" in fresh)) say("This server does not tell why a task waits.");
      else show(fresh.waiting);
    } catch (problem) {
      say(`Could not ask why: ${describe(problem)}`, true);
    }
  };
  button.addEventListener("click", () => ask(false));
  line.append(button);
  if (auto) ask(true);
  return line;
}
