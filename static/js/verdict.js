// The structured part of a verdict, from the queue's form: a checklist of
// checkboxes and a picker of fail reasons (toggle buttons; number keys 1..9
// toggle the first nine). `problem()` says what a verdict still lacks before
// it may be sent (a fail reason, a note), the same rules the server applies.
import { h } from "./dom.js";

export class Verdict {
  constructor(ui) {
    this.ui = ui; // {checklistBox, checklist, reasonsBox, reasons, noteHint, note}
    this.form = null;
    this.key = null; // the task and form now rendered
    this.picked = new Set(); // reason codes
  }

  /** Show `form` for task `taskId`; picks survive a re-send of the same task only. */
  show(form, taskId) {
    const key = `${taskId}:${JSON.stringify(form)}`;
    if (key === this.key) return;
    const sameTask = this.key !== null && this.key.startsWith(`${taskId}:`);
    this.key = key;
    this.form = form;
    const reasons = (form && form.fail_reasons) || [];
    const checklist = (form && form.checklist) || [];
    const keepChecks = sameTask ? this.checklist() || {} : {};
    if (!sameTask) this.picked = new Set();
    this.picked = new Set([...this.picked].filter((code) => reasons.some((r) => r.code === code)));

    this.ui.checklistBox.hidden = !checklist.length;
    this.ui.checklist.replaceChildren(...checklist.map((item) => h("label", { class: "check" },
      h("input", { type: "checkbox", dataset: { id: item.id }, checked: Boolean(keepChecks[item.id]) }),
      h("span", {}, item.label))));

    this.ui.reasonsBox.hidden = !reasons.length;
    this.ui.reasons.replaceChildren(...reasons.map((reason, index) => {
      const button = h("button", {
        type: "button", class: "reason", dataset: { code: reason.code },
        "aria-pressed": String(this.picked.has(reason.code)),
      }, index < 9 ? h("kbd", {}, String(index + 1)) : null, h("span", {}, reason.label));
      button.addEventListener("click", () => this.toggle(reason.code));
      return button;
    }));
    this.ui.noteHint.textContent = this.noteRequired() ? "(required on fail)" : "(optional)";
    this.clearProblem();
  }

  clear() {
    this.show(null, null);
  }

  noteRequired() {
    return Boolean(this.form && this.form.note_required_on_fail);
  }

  /** Toggle a reason by code, or by its 1-based number (the keyboard). */
  toggle(codeOrNumber) {
    const reasons = (this.form && this.form.fail_reasons) || [];
    const reason = typeof codeOrNumber === "number" ? reasons[codeOrNumber - 1]
      : reasons.find((r) => r.code === codeOrNumber);
    if (!reason) return false;
    if (this.picked.has(reason.code)) this.picked.delete(reason.code);
    else this.picked.add(reason.code);
    const button = this.ui.reasons.querySelector(`[data-code="${CSS.escape(reason.code)}"]`);
    if (button) button.setAttribute("aria-pressed", String(this.picked.has(reason.code)));
    if (this.picked.size) this.ui.reasonsBox.classList.remove("needs-answer");
    return true;
  }

  /** The picked reason codes, in the form's order. */
  reasons() {
    const reasons = (this.form && this.form.fail_reasons) || [];
    return reasons.filter((r) => this.picked.has(r.code)).map((r) => r.code);
  }

  /** {id: bool} for every checklist item, or null when the form has none. */
  checklist() {
    const boxes = [...this.ui.checklist.querySelectorAll("input[type=checkbox]")];
    if (!boxes.length) return null;
    return Object.fromEntries(boxes.map((box) => [box.dataset.id, box.checked]));
  }

  /** What a verdict still lacks (a sentence), highlighted and focused; null when complete. */
  problem(outcome, note) {
    this.clearProblem();
    if (outcome !== "fail" || !this.form) return null;
    const reasons = this.form.fail_reasons || [];
    if (reasons.length && !this.picked.size) {
      this.ui.reasonsBox.classList.add("needs-answer");
      const first = this.ui.reasons.querySelector(".reason");
      if (first) first.focus();
      const keys = reasons.length > 1 ? ` (keys 1–${Math.min(reasons.length, 9)})` : " (key 1)";
      return `Pick a fail reason first${keys}; nothing was sent.`;
    }
    if (this.noteRequired() && !note) {
      this.ui.note.classList.add("needs-answer");
      this.ui.note.focus();
      return "A fail needs a note on this queue: write what you saw; nothing was sent.";
    }
    return null;
  }

  clearProblem() {
    this.ui.reasonsBox.classList.remove("needs-answer");
    this.ui.note.classList.remove("needs-answer");
  }

  setDisabled(disabled) {
    for (const control of this.ui.checklist.querySelectorAll("input")) control.disabled = disabled;
    for (const control of this.ui.reasons.querySelectorAll("button")) control.disabled = disabled;
  }
}
