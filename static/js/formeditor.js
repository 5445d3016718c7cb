// The per-queue review form editor: display fields, checklist, fail reasons
// and "note required on fail" as structured inputs, a preview of what the
// reviewer gets, and PATCH /queues/<name> {"form"}. The server judges the
// form (422 invalid_form): its message is shown as it is.
import { $, h, setText } from "./dom.js";
import { describe, toast } from "./feedback.js";
import { loadReasonLabels } from "./results.js";
import { api } from "./session.js";

const DISPLAY_AS = ["text", "image", "link", "json", "iframe"];

let editing = null; // the queue's name

function removable(row) {
  const remove = h("button", { type: "button", class: "btn btn-small btn-ghost", "aria-label": "Remove" }, "×");
  remove.addEventListener("click", () => {
    row.remove();
    preview();
  });
  row.append(remove);
  return row;
}

function input(value, placeholder, key, max = 255) {
  const node = h("input", { value: value ?? "", placeholder, maxlength: max, dataset: { key },
    "aria-label": placeholder, autocomplete: "off" });
  node.addEventListener("input", preview);
  return node;
}

function displayRow(item = {}) {
  const select = h("select", { dataset: { key: "as" }, "aria-label": "Shown as" },
    DISPLAY_AS.map((as) => h("option", { value: as }, as)));
  select.value = DISPLAY_AS.includes(item.as) ? item.as : "text";
  select.addEventListener("change", preview);
  return removable(h("div", { class: "form-row" }, input(item.field, "Payload field", "field"), select));
}

function pairRow(first, second, item = {}) {
  return removable(h("div", { class: "form-row" }, input(item[first[0]], first[1], first[0], 64),
    input(item[second[0]], second[1], second[0])));
}

const checkRow = (item) => pairRow(["id", "Item id"], ["label", "What to check"], item);
const reasonRow = (item) => pairRow(["code", "Reason code"], ["label", "Label"], item);

function rowsOf(selector) {
  return [...$(selector).children].map((row) => Object.fromEntries(
    [...row.querySelectorAll("[data-key]")].map((node) => [node.dataset.key, node.value.trim()])));
}

/** The form as typed (empty rows left out: a half-typed row is the server's to judge).
 * A display row is empty when its field is (its select always has a value); a
 * checklist or reason row when both its inputs are. Typed text is never taken
 * for a default: a field, id or label may well be "image" or "text". */
function typedForm() {
  const typed = (row) => Object.values(row).some((v) => v !== "");
  return {
    display: rowsOf("#form-display").filter((row) => row.field !== ""),
    checklist: rowsOf("#form-checklist").filter(typed),
    fail_reasons: rowsOf("#form-reasons").filter(typed),
    note_required_on_fail: $("#form-note-required").checked,
  };
}

function preview() {
  const form = typedForm();
  $("#form-preview").replaceChildren(
    h("p", { class: "small muted" }, "The item:"),
    form.display.length
      ? h("ul", { class: "preview-display" }, form.display.map((d) =>
        h("li", {}, h("code", {}, d.field || "?"), ` shown as ${d.as}`)))
      : h("p", { class: "small" }, "Every payload field, as text."),
    form.checklist.length ? h("div", { class: "preview-checklist" }, form.checklist.map((c) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", disabled: true }), c.label || c.id))) : null,
    h("div", { class: "preview-decision" },
      h("span", { class: "btn btn-small btn-pass" }, "Pass (P)"),
      h("span", { class: "btn btn-small btn-fail" }, "Fail (F)")),
    form.fail_reasons.length ? h("ol", { class: "preview-reasons" }, form.fail_reasons.map((r, i) =>
      h("li", {}, h("kbd", {}, String(i + 1)), ` ${r.label || r.code}`, h("code", {}, ` ${r.code}`)))) : null,
    h("p", { class: "small" }, form.note_required_on_fail ? "A fail needs a note."
      : "A note is optional."));
}

function fill(form) {
  const f = form || {};
  $("#form-display").replaceChildren(...(f.display || []).map(displayRow));
  $("#form-checklist").replaceChildren(...(f.checklist || []).map(checkRow));
  $("#form-reasons").replaceChildren(...(f.fail_reasons || []).map(reasonRow));
  $("#form-note-required").checked = Boolean(f.note_required_on_fail);
  preview();
}

function setBusy(editor, busy) {
  editor.dataset.loading = String(busy);
  for (const control of editor.querySelectorAll("button, input, select")) {
    if (control.id !== "form-close" && !control.closest("#form-preview")) control.disabled = busy;
  }
}

/** Open the editor on queue `name`, with its form as the server has it. */
export async function editForm(name) {
  editing = name;
  const editor = $("#form-editor");
  setText($("#form-editor-title"), `Review form of ${name}`);
  setText($("#form-error"), "");
  editor.dataset.queue = name;
  // Until the queue's form is read, nothing can be added or saved: fill()
  // replaces every row, so a row added meanwhile would vanish.
  setBusy(editor, true);
  editor.hidden = false;
  let queue = null;
  try {
    const body = await api("GET", "/queues");
    queue = (body.queues || []).find((q) => q.name === name) || null;
  } catch (problem) {
    // Not an empty form to save over the real one: the editor stays closed to edits.
    if (editing === name) setText($("#form-error"), `Could not read the queue: ${describe(problem)}`);
    return;
  }
  if (editing !== name) return;
  fill(queue ? queue.form : null);
  setBusy(editor, false);
  editor.scrollIntoView({ block: "nearest" });
}

async function save(form, button, done) {
  const name = editing;
  setText($("#form-error"), "");
  button.disabled = true;
  try {
    await api("PATCH", `/queues/${encodeURIComponent(name)}`, { form });
    toast("ok", done(name));
    loadReasonLabels();
    return true;
  } catch (problem) {
    setText($("#form-error"), `Not saved: ${describe(problem)}`);
    return false;
  } finally {
    button.disabled = false;
  }
}

export function initFormEditor() {
  const editor = $("#form-editor");
  $("#form-add-display").addEventListener("click", () => {
    $("#form-display").append(displayRow());
    preview();
  });
  $("#form-add-check").addEventListener("click", () => {
    $("#form-checklist").append(checkRow());
    preview();
  });
  $("#form-add-reason").addEventListener("click", () => {
    $("#form-reasons").append(reasonRow());
    preview();
  });
  $("#form-note-required").addEventListener("change", preview);
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    if (editing) save(typedForm(), $("#form-save"), (name) => `The review form of ${name} is saved.`);
  });
  $("#form-clear").addEventListener("click", async (event) => {
    if (editing && await save(null, event.currentTarget, (name) => `${name} has no review form now.`)) {
      fill(null);
    }
  });
  $("#form-close").addEventListener("click", () => {
    editing = null;
    editor.hidden = true;
  });
}
