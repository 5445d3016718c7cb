// One Socket.IO connection to a namespace, with the access token in the
// connect `auth`, a refresh when the server refuses an expired token, and a
// connection indicator: connecting / connected / reconnecting / offline.
import { io } from "/vendor/socket.io.esm.min.js";
import { accessToken, refreshAccess, sessionEnded } from "./session.js";
import { setText } from "./dom.js";

// Every socket live() opened, so a second module of the same page (quality.js)
// can listen on it without a second connection: onLive(namespace, callback).
const opened = [];
const watchers = [];

/** callback(socket) for the socket of `namespace`, now if it is open already, else when it is. */
export function onLive(namespace, callback) {
  watchers.push([namespace, callback]);
  for (const [name, socket] of opened) if (name === namespace) callback(socket);
}

const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/**
 * live("/reviewer", indicatorElement, onState) -> socket
 * onState(state) is called on every change of the connection state.
 */
export function live(namespace, indicator, onState = () => {}) {
  const socket = io(namespace, {
    // A function, so every (re)connect sends the token we hold now.
    auth: (send) => send({ token: accessToken() }),
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  let state = null;
  let everConnected = false;
  let refreshedForThisAttempt = false;
  let retryTimer = null;

  function set(next, detail = "") {
    if (!navigator.onLine) next = "offline";
    const label = LABELS[next] + (detail ? ` ${detail}` : "");
    indicator.className = `conn conn-${next}`;
    indicator.dataset.state = next;
    setText(indicator.querySelector(".conn-label"), label);
    indicator.title = next === "offline"
      ? "This device has no network. Actions wait until it is back."
      : next === "reconnecting" ? "The connection dropped; trying again. Your task is held for a while."
        : "";
    if (next !== state) {
      state = next;
      onState(next);
    }
  }

  function retryLater(ms) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (!socket.connected) socket.connect();
    }, ms);
  }

  socket.on("connect", () => {
    everConnected = true;
    refreshedForThisAttempt = false;
    set("connected");
  });

  socket.on("disconnect", (reason) => {
    if (reason === "io server disconnect") {
      // The server closed us (a logout elsewhere, a revoked token): reconnect
      // once; a dead session is then refused and ends at the login page.
      socket.connect();
    }
    set(everConnected ? "reconnecting" : "connecting");
  });

  socket.io.on("reconnect_attempt", (attempt) => {
    set(everConnected ? "reconnecting" : "connecting", attempt > 1 ? `(try ${attempt})` : "");
  });

  socket.on("connect_error", async (error) => {
    if (socket.active) {
      // Transport trouble: the manager retries by itself.
      set(everConnected ? "reconnecting" : "connecting");
      return;
    }
    // The server refused the connection: it will not retry by itself.
    const code = (error && error.data && error.data.code) || "unknown";
    set(everConnected ? "reconnecting" : "connecting");
    if (code === "unauthorized") {
      if (refreshedForThisAttempt) {
        // A fresh token was refused too: this account may not use this page.
        sessionEnded("refused");
        return;
      }
      const refreshed = await refreshAccess();
      if (refreshed === "ok") {
        refreshedForThisAttempt = true;
        socket.connect();
      } else if (refreshed === "dead") {
        sessionEnded("expired");
      } else {
        retryLater(2000);
      }
      return;
    }
    // "unavailable" (database outage) or a server error: try again shortly.
    retryLater(2000);
  });

  addEventListener("offline", () => set("offline"));
  addEventListener("online", () => {
    set(socket.connected ? "connected" : "reconnecting");
    if (!socket.connected) {
      // Skip the reconnection back-off: the network is back now.
      socket.disconnect();
      socket.connect();
    }
  });

  set("connecting");
  opened.push([namespace, socket]);
  for (const [name, callback] of watchers) if (name === namespace) callback(socket);
  return socket;
}
