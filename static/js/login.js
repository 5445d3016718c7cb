// The login page: POST /login, keep the tokens in this tab's sessionStorage,
// then send reviewers to their task screen and supervisors to the board.
import { $ } from "./dom.js";
import { homeFor, loadSession, saveSession } from "./session.js";

const NOTICES = {
  expired: "Your session has ended. Please sign in again.",
  refused: "This account may not open that page. Please sign in again.",
  "logged-out": "You are signed out.",
};

function show(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

function init() {
  const params = new URLSearchParams(location.search);
  const existing = loadSession();
  if (existing && !params.has("session")) {
    location.replace(homeFor(existing.user.role));
    return;
  }
  show($("#login-notice"), NOTICES[params.get("session")] || "");

  const form = $("#login-form");
  const error = $("#login-error");
  const submit = $("#login-submit");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#username").value.trim();
    const password = $("#password").value;
    if (!username || !password) {
      show(error, "Enter your username and password.");
      return;
    }
    show(error, "");
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const response = await fetch("/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        show(error, response.status === 401
          ? "Wrong username or password."
          : (body.error && body.error.message) || `Sign-in failed (${response.status}).`);
        return;
      }
      saveSession({
        access_token: body.access_token,
        refresh_token: body.refresh_token,
        user: body.user,
      });
      location.replace(homeFor(body.user.role));
    } catch {
      show(error, "The server cannot be reached. Check the connection and try again.");
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
}

init();
