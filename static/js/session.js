// The signed-in user: tokens in sessionStorage (per tab, gone with the tab),
// REST calls with the access token, one shared refresh when it has expired,
// and the way back to the login page when the session is over.

const KEY = "qc_live.session";
const UNREACHABLE = "The server cannot be reached; check the connection.";

export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(KEY));
    return session && session.access_token && session.user ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

export function homeFor(role) {
  return role === "reviewer" ? "/reviewer" : "/supervisor";
}

/** The session if its user may see this page; otherwise go where they belong. */
export function requireSession(roles) {
  const session = loadSession();
  if (!session) {
    location.replace("/");
    return null;
  }
  if (!roles.includes(session.user.role)) {
    location.replace(homeFor(session.user.role));
    return null;
  }
  return session;
}

export function accessToken() {
  const session = loadSession();
  return session ? session.access_token : null;
}

// Set once this tab is on its way to the login page. A logout makes the server
// close this tab's sockets, and the reconnect that follows is refused: that
// second ending must not start a second navigation racing the first.
let leaving = false;

/** The session is over (refresh refused, or logged out elsewhere): back to login. */
export function sessionEnded(reason = "expired") {
  if (leaving) return;
  leaving = true;
  clearSession();
  location.replace(`/?session=${encodeURIComponent(reason)}`);
}

let refreshing = null;

/**
 * Get a new access token with the refresh token. Concurrent callers share one
 * request. Resolves "ok", "dead" (the server refused: log in again) or
 * "transient" (network or server trouble: try again later).
 */
export function refreshAccess() {
  if (!refreshing) {
    refreshing = (async () => {
      const session = loadSession();
      if (!session || !session.refresh_token) return "dead";
      let response;
      try {
        response = await fetch("/refresh", {
          method: "POST",
          headers: { Authorization: `Bearer ${session.refresh_token}` },
        });
      } catch {
        return "transient";
      }
      if (response.status === 401 || response.status === 422 || response.status === 403) return "dead";
      if (!response.ok) return "transient";
      const body = await response.json();
      const current = loadSession();
      if (!current) return "dead";
      saveSession({ ...current, access_token: body.access_token });
      return "ok";
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

export class ApiError extends Error {
  constructor(status, code, message, body, request = "") {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.request = request; // "PATCH /tasks/7"
  }

  /** Missing on this server (no such route or method), as opposed to e.g. an unknown task. */
  get unsupported() {
    return (this.status === 404 && this.code === "not_found") || this.status === 405;
  }

  /** For a person: the server's message, plus status and code. */
  describe() {
    if (this.status === 0) return this.message;
    if (this.unsupported) {
      return `This server does not offer ${this.request || "that"} yet (${this.status} ${this.code}).`;
    }
    return `${this.message} (${this.status} ${this.code})`;
  }
}

async function errorFrom(response, request) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  const error = body && body.error ? body.error : {};
  return new ApiError(response.status, error.code || `http_${response.status}`,
    error.message || response.statusText || "request failed", body, request);
}

/**
 * Call the REST API. Resolves with the JSON body; rejects with ApiError.
 * A 401 triggers one refresh and one retry; a dead session goes to login.
 */
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Authorization: `Bearer ${accessToken()}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", UNREACHABLE);
    }
    if (response.status === 401 && attempt === 0) {
      const refreshed = await refreshAccess();
      if (refreshed === "ok") continue;
      if (refreshed === "dead") sessionEnded("expired");
    }
    if (!response.ok) throw await errorFrom(response, `${method} ${path.split("?")[0]}`);
    return response.status === 204 ? null : response.json();
  }
}

/**
 * Send a body with upload progress (fetch has none): XMLHttpRequest.
 * onProgress(fraction | null) — null when the size is unknown.
 */
export function upload(method, path, body, contentType, onProgress) {
  const once = () => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.setRequestHeader("Authorization", `Bearer ${accessToken()}`);
    if (contentType) xhr.setRequestHeader("Content-Type", contentType);
    xhr.responseType = "text";
    xhr.upload.onprogress = (event) => {
      onProgress(event.lengthComputable ? event.loaded / event.total : null);
    };
    xhr.upload.onload = () => onProgress(1);
    xhr.onerror = () => reject(new ApiError(0, "network", UNREACHABLE));
    xhr.onload = () => {
      let parsed = null;
      try {
        parsed = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      resolve({ status: xhr.status, body: parsed, statusText: xhr.statusText });
    };
    xhr.send(body);
  });
  return (async () => {
    let result = await once();
    if (result.status === 401) {
      const refreshed = await refreshAccess();
      if (refreshed === "dead") sessionEnded("expired");
      if (refreshed === "ok") result = await once();
    }
    if (result.status >= 200 && result.status < 300) return result.body;
    const error = result.body && result.body.error ? result.body.error : {};
    throw new ApiError(result.status, error.code || `http_${result.status}`,
      error.message || result.statusText || "request failed", result.body, `${method} ${path}`);
  })();
}

/** Log out: the server revokes this user's tokens and disconnects its sockets. */
export async function logout() {
  leaving = true;
  try {
    await fetch("/logout", { method: "POST", headers: { Authorization: `Bearer ${accessToken()}` } });
  } catch {
    /* offline: the tokens still go from this tab */
  }
  clearSession();
  location.replace("/?session=logged-out");
}
