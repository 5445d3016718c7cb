// People on the board: create an account (POST /users), reset a password
// (PATCH /users/<id> {"password"}), deactivate (DELETE /users/<id>) or bring
// back (PATCH {"active": true}), skills (the editor of queues.js) and pause or
// resume (PUT /availability with user_id). Every refusal is shown: in the
// form's error line and as a toast.
import { $, h, setText } from "./dom.js";
import { describe, toast } from "./feedback.js";
import { editSkills, skillChips } from "./queues.js";
import { api } from "./session.js";

const state = { users: [], shown: null, me: null, loading: null, again: false, resetting: null };

function stateText(user) {
  if (!user.active) return ["offline", "Deactivated"];
  if (user.role !== "reviewer") return [user.online ? "idle" : "offline", user.online ? "Online" : "Offline"];
  if (!user.online) return ["offline", user.available ? "Offline" : "Offline · paused"];
  if (user.task_id) return ["busy", "On task"];
  return user.available ? ["idle", "Idle"] : ["paused", "Paused"];
}

function button(label, onClick, extra = "") {
  const node = h("button", { type: "button", class: `btn btn-small ${extra}` }, label);
  node.addEventListener("click", () => onClick(node));
  return node;
}

const armed = new Map(); // key -> when its "Sure?" runs out (survives a re-render)

/** A button that asks "Sure?" first and acts on a second click within 4 s. */
function confirmed(label, key, onConfirm, extra) {
  const node = h("button", { type: "button", class: `btn btn-small ${extra}` }, label);
  const show = () => {
    const on = (armed.get(key) || 0) > Date.now();
    node.textContent = on ? "Sure?" : label;
    node.classList.toggle("armed", on);
  };
  show();
  if (armed.has(key)) setTimeout(show, Math.max(0, armed.get(key) - Date.now()) + 50);
  node.addEventListener("click", () => {
    if ((armed.get(key) || 0) <= Date.now()) {
      armed.set(key, Date.now() + 4000);
      show();
      setTimeout(show, 4050);
      return;
    }
    armed.delete(key);
    show();
    onConfirm(node);
  });
  return node;
}

async function change(node, work, done) {
  setText($("#people-error"), "");
  try {
    node.disabled = true;
    const result = await work();
    toast("ok", done);
    return result;
  } catch (problem) {
    setText($("#people-error"), describe(problem));
    toast("error", describe(problem));
    return null;
  } finally {
    node.disabled = false;
    loadPeople();
  }
}

function personRow(user) {
  const [kind, label] = stateText(user);
  const actions = [];
  const manageable = state.me && (state.me.role === "admin" || user.role === "reviewer")
    && user.id !== state.me.id;
  if (manageable && user.active) {
    if (user.role === "reviewer") {
      actions.push(button("Skills", () => editSkills(user)));
      actions.push(button(user.available ? "Pause" : "Resume", (node) => change(node,
        () => api("PUT", "/availability", { availability: user.available ? 0 : 1, user_id: user.id }),
        `${user.username} is ${user.available ? "paused" : "available again"}.`)));
    }
    actions.push(button("Password", () => resetPassword(user)));
    actions.push(confirmed("Deactivate", `deactivate-${user.id}`, (node) => change(node,
      () => api("DELETE", `/users/${user.id}`), `${user.username} is deactivated.`), "btn-danger-ghost"));
  } else if (manageable) {
    actions.push(button("Reactivate", (node) => change(node,
      () => api("PATCH", `/users/${user.id}`, { active: true }), `${user.username} is active again.`)));
  }
  return h("tr", { dataset: { person: user.username, personId: user.id, active: String(user.active) } },
    h("td", { class: "name" }, user.username),
    h("td", {}, user.role),
    h("td", {}, h("span", { class: `pill pill-${kind}` }, label)),
    h("td", { class: "person-skills" }, user.role === "reviewer" ? skillChips(user.skills) : "–"),
    h("td", { class: "actions" }, actions));
}

function render() {
  // Only when something changed: a row rebuilt would lose a half-made
  // confirmation ("Sure?") or the focus.
  const key = JSON.stringify(state.users);
  if (key === state.shown) return;
  state.shown = key;
  const rows = [...state.users].sort((a, b) => Number(b.active) - Number(a.active)
    || a.role.localeCompare(b.role) || a.username.localeCompare(b.username));
  $("#people tbody").replaceChildren(...rows.map(personRow));
  const active = state.users.filter((u) => u.active).length;
  setText($("#people-summary"), `${active} active · ${state.users.length} accounts`);
}

/** Read GET /users again (one at a time; a call during a read reads once more after it). */
export async function loadPeople() {
  if (state.loading) {
    state.again = true;
    return;
  }
  state.loading = true;
  try {
    const body = await api("GET", "/users");
    state.users = body.users || [];
    render();
  } catch (problem) {
    setText($("#people-error"), `Could not load the people: ${describe(problem)}`);
  } finally {
    state.loading = false;
    if (state.again) {
      state.again = false;
      loadPeople();
    }
  }
}

export function people() {
  return state.users;
}

function resetPassword(user) {
  state.resetting = user;
  const form = $("#password-form");
  setText($("#password-title"), `New password for ${user.username}:`);
  $("#password-new").value = "";
  form.hidden = false;
  $("#password-new").focus();
}

export function initPeople(me) {
  state.me = me;
  if (me.role !== "admin") $('#person-role option[value="supervisor"]').remove();
  $("#person-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#person-username").value.trim();
    const password = $("#person-password").value;
    const role = $("#person-role").value;
    const error = $("#people-error");
    if (!username || !password) {
      setText(error, "A username and a password are needed.");
      return;
    }
    setText(error, "");
    const go = $("#person-create");
    go.disabled = true;
    let made = null;
    try {
      made = await api("POST", "/users", { username, password, role });
    } catch (problem) {
      setText(error, `Not created: ${describe(problem)}`);
      toast("error", `${username} was not created: ${describe(problem)}`);
      return;
    } finally {
      go.disabled = false;
    }
    toast("ok", `${made.username} was created${made.role === "reviewer" ? ": set their skills" : ""}.`);
    $("#person-username").value = "";
    $("#person-password").value = "";
    await loadPeople();
    if (made.role === "reviewer") editSkills(made);
  });
  $("#password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = state.resetting;
    if (!user) return;
    const done = await change($("#password-save"),
      () => api("PATCH", `/users/${user.id}`, { password: $("#password-new").value }),
      `${user.username}'s password was reset; they are signed out everywhere.`);
    if (done) {
      state.resetting = null;
      $("#password-form").hidden = true;
    }
  });
  $("#password-close").addEventListener("click", () => {
    state.resetting = null;
    $("#password-form").hidden = true;
  });
  loadPeople();
}
