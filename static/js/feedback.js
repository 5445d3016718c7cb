// How the board tells a supervisor what happened: toasts, and REST actions
// run from a button (disabled while in flight, the outcome toasted).
import { $, h } from "./dom.js";
import { ApiError } from "./session.js";

export function toast(kind, text, seconds = kind === "error" ? 12 : 5) {
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const node = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, text), close);
  close.addEventListener("click", () => node.remove());
  $("#toasts").append(node);
  setTimeout(() => node.remove(), seconds * 1000);
}

export function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error && error.message || error);
}

/** Run a REST action from a button: disabled while in flight, toast on the outcome. */
export async function act(button, work, done) {
  if (button) button.disabled = true;
  try {
    const result = await work();
    if (done) toast("ok", typeof done === "function" ? done(result) : done);
    return result;
  } catch (error) {
    toast("error", describe(error));
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}
