// Checking the checkers (issue 17) on the pages, beside board.js and reviewer.js:
// - the board: open disputes (the first verdict and the blind audit's side by
//   side, who gave each, a form to resolve: POST /tasks/<id>/resolve), each
//   reviewer's quality (GET /stats/reviewers: agreement, gold accuracy, audits,
//   disputes, audit probability, the last 7 days), the queue form's audit_rate
//   and a task form with an optional expected outcome (a gold task);
// - the reviewer page: an audit task is labelled "Second review", nothing more.
//   The first verdict never reaches the page (the server does not send it), so
//   there is nothing here to hide.
// It listens on the page's own socket (live.js onLive): no second connection.
// Every name, note and figure is set as text.
import { $, formatClock, h, setText } from "./dom.js";
import { describe, toast } from "./feedback.js";
import { onLive } from "./live.js";
import { addQueueField } from "./queues.js";
import { api, loadSession } from "./session.js";

const DISPUTES_LIMIT = 100; // the oldest this many are shown
const REFRESH_DELAY_MS = 400; // board pushes come in bursts: one read after them
const REFRESH_EVERY_MS = 15000; // and a read now and then (the trend's days move), whatever the pushes say
const SVG = "http://www.w3.org/2000/svg";

// --- the reviewer page ------------------------------------------------------------

function initReviewerPage() {
  const kinds = new Map(); // task id -> "review" | "audit", from task-assigned
  const label = h("span", { id: "task-kind", class: "kind-badge", hidden: true,
    title: "Another reviewer checked this item too. Judge it on its own." }, "Second review");
  const update = () => {
    const card = $("#task-card");
    const idNode = $("#task-id");
    if (!card || !idNode) return;
    if (!label.isConnected) idNode.after(label);
    const id = Number(idNode.textContent.replace("#", ""));
    const hide = card.hidden || kinds.get(id) !== "audit";
    // Only real changes: a write would wake the observer below again.
    if (label.hidden !== hide) label.hidden = hide;
    const kind = kinds.get(id) || "";
    if (card.dataset.kind !== kind) card.dataset.kind = kind;
  };
  onLive("/reviewer", (socket) => {
    socket.on("task-assigned", (data) => {
      const task = data && data.task;
      if (!task || typeof task.id !== "number") return;
      kinds.set(task.id, task.kind || "review");
      if (kinds.size > 200) kinds.delete(kinds.keys().next().value);
      update();
    });
  });
  const card = $("#task-card");
  if (card) {
    new MutationObserver(update).observe(card, { attributes: true, attributeFilter: ["hidden"],
      childList: true, characterData: true, subtree: true });
  }
  update();
}

// --- the board: small helpers --------------------------------------------------------

const board = {
  names: new Map(), // reviewer id -> username (from the snapshot)
  key: null, // what the last snapshot said about completions and disputes
  timer: null,
  busy: false,
  again: false,
  disputes: new Map(), // original id -> {li, parts}
  audits: new Map(), // original id -> its audit task (completed: it no longer changes)
};

function percent(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  return `${Math.round(Number(value) * 100)}%`;
}

function who(id) {
  if (id === null || id === undefined) return "–";
  return board.names.get(id) || `#${id}`;
}

function outcomePill(outcome) {
  const known = outcome === "pass" || outcome === "fail";
  return h("span", { class: `pill verdict verdict-${known ? outcome : "none"}` },
    known ? outcome : "no verdict yet");
}

// --- disputes ------------------------------------------------------------------------

/**
 * The audit of `original`: its history names it (the `disputed` event's
 * detail, or `audit_requested`'s), then GET /tasks/<id>. A completed audit no
 * longer changes, so it is asked once.
 */
async function auditOf(original) {
  if (board.audits.has(original.id)) return board.audits.get(original.id);
  const history = await api("GET", `/tasks/${original.id}/history`);
  const events = (history.events || []).filter((e) => e.detail && typeof e.detail.audit === "number");
  const named = events.find((e) => e.kind === "disputed") || events[events.length - 1];
  if (!named) return null;
  const audit = await api("GET", `/tasks/${named.detail.audit}`);
  if (audit && audit.status === "completed") board.audits.set(original.id, audit);
  return audit;
}

function verdictBox(title, task, role) {
  const box = h("div", { class: "verdict-box", dataset: { role } });
  if (!task) {
    box.append(h("h4", {}, title), h("p", { class: "muted small" }, "Not found."));
    return box;
  }
  const reasons = Array.isArray(task.reasons) && task.reasons.length
    ? h("p", { class: "small verdict-reasons" }, `Reasons: ${task.reasons.join(", ")}`) : null;
  box.append(...[
    h("h4", {}, title, " ", h("span", { class: "muted small tabular" }, `#${task.id}`)),
    h("p", { class: "verdict-line" }, outcomePill(task.outcome), " by ",
      h("strong", { class: "verdict-who" }, who(task.assignee_id)),
      h("span", { class: "muted small" }, task.completed_at ? ` · ${formatClock(task.completed_at)}` : "")),
    reasons,
    h("p", { class: `verdict-note${task.note ? "" : " muted small"}` },
      task.note ? task.note : "No note.")].filter(Boolean));
  return box;
}

function disputeItem(original) {
  const id = original.id;
  const name = `resolve-${id}`;
  const note = h("input", { type: "text", class: "resolve-note", maxlength: 4000, autocomplete: "off",
    placeholder: "Note (optional)", "aria-label": `Note for the resolution of task ${id}` });
  const choice = (outcome) => h("label", { class: `resolve-choice resolve-${outcome}` },
    h("input", { type: "radio", name, value: outcome }), ` ${outcome === "pass" ? "Pass" : "Fail"}`);
  const go = h("button", { type: "submit", class: "btn btn-small btn-primary" }, "Resolve");
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "resolve-form", novalidate: true,
    "aria-label": `Resolve the dispute on task ${id}` },
  h("span", { class: "muted small" }, "Final verdict:"), choice("pass"), choice("fail"), note, go, error);
  const head = h("div", { class: "dispute-head" });
  const sides = h("div", { class: "dispute-sides" });
  const li = h("li", { class: "dispute", dataset: { task: id } }, head, sides, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setText(error, "");
    const picked = form.querySelector("input[type=radio]:checked");
    if (!picked) {
      setText(error, "Choose the final verdict: pass or fail.");
      return;
    }
    const body = { outcome: picked.value };
    if (note.value.trim()) body.note = note.value.trim();
    go.disabled = true;
    try {
      await api("POST", `/tasks/${id}/resolve`, body);
      toast("ok", `Task #${id} resolved: ${body.outcome}. That verdict is final.`);
      li.remove();
      board.disputes.delete(id);
      showDisputeCount();
    } catch (problem) {
      setText(error, `Not resolved: ${describe(problem)}`);
      toast("error", `Task #${id} was not resolved: ${describe(problem)}`);
    } finally {
      go.disabled = false;
    }
    refreshSoon();
  });
  return { li, head, sides, key: null };
}

function showDisputeCount() {
  const n = board.disputes.size;
  $("#disputes-empty").hidden = n > 0;
  const more = board.moreDisputes ? `+ (the oldest ${n} shown)` : "";
  setText($("#quality-summary"), n ? `${n}${more} open dispute${n === 1 && !more ? "" : "s"}` : "no open disputes");
  $("#quality-summary").classList.toggle("warn", n > 0);
}

async function loadDisputes() {
  // audit=open: disputed and not resolved yet (finalized_at null).
  const body = await api("GET", `/tasks?audit=open&limit=${DISPUTES_LIMIT}`);
  const originals = (body.tasks || []).filter((t) => t.audit === "disputed" && !t.finalized_at);
  board.moreDisputes = Boolean(body.next_cursor);
  const audits = await Promise.all(originals.map((t) => auditOf(t).catch(() => null)));
  const list = $("#disputes");
  const seen = new Set();
  originals.forEach((original, index) => {
    seen.add(original.id);
    let entry = board.disputes.get(original.id);
    if (!entry) {
      entry = disputeItem(original);
      board.disputes.set(original.id, entry);
    }
    const audit = audits[index];
    // Redrawn only when something shown changed: a note being typed stays.
    const key = JSON.stringify([original.outcome, original.note, original.reasons, original.assignee_id,
      original.name, original.queue, audit && [audit.id, audit.outcome, audit.note, audit.assignee_id],
      [...board.names]]);
    if (entry.key !== key) {
      entry.key = key;
      entry.head.replaceChildren(
        h("strong", { class: "tabular" }, `#${original.id}`), " ",
        h("span", { class: "dispute-name" }, original.name),
        h("span", { class: "muted small" }, original.queue ? ` · ${original.queue}` : ""));
      entry.sides.replaceChildren(verdictBox("First verdict", original, "original"),
        verdictBox("Second review", audit, "audit"));
    }
    if (list.children[index] !== entry.li) list.insertBefore(entry.li, list.children[index] || null);
  });
  for (const [id, entry] of board.disputes) {
    if (!seen.has(id)) {
      entry.li.remove();
      board.disputes.delete(id);
    }
  }
  showDisputeCount();
}

// --- reviewers' quality (GET /stats/reviewers) -----------------------------------------

function trendOf(row) {
  const trend = row.trend || row.last_7_days || row.days || [];
  return Array.isArray(trend) ? trend : [];
}

function dayLabel(day) {
  const date = day.day || day.date || day.start || "";
  const t = Date.parse(date.length === 10 ? `${date}T00:00:00` : date);
  return Number.isNaN(t) ? String(date) : new Date(t).toLocaleDateString([], { month: "short", day: "numeric" });
}

function dayText(day) {
  const parts = [dayLabel(day)];
  const audits = day.audits ?? day.audits_done;
  parts.push(`agreement ${percent(day.agreement_rate)}${audits !== undefined ? ` of ${audits}` : ""}`);
  const gold = day.gold ?? day.gold_done;
  parts.push(`gold ${percent(day.gold_accuracy)}${gold !== undefined ? ` of ${gold}` : ""}`);
  if (day.completed !== undefined) parts.push(`${day.completed} done`);
  return parts.join(", ");
}

/** Seven days as bars (agreement rate) with a dot for gold accuracy; a grey tick: no data. */
function sparkline(row) {
  const days = trendOf(row);
  const width = 7 * 12;
  const height = 26;
  const root = document.createElementNS(SVG, "svg");
  const set = (node, attrs) => {
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    return node;
  };
  set(root, { viewBox: `0 0 ${width} ${height}`, width, height, class: "sparkline", role: "img",
    "aria-label": days.length ? `Last 7 days: ${days.map(dayText).join("; ")}` : "No data for the last 7 days" });
  days.slice(-7).forEach((day, i) => {
    const x = i * 12 + 2;
    const group = document.createElementNS(SVG, "g");
    const agreement = day.agreement_rate;
    group.append(set(document.createElementNS(SVG, "rect"), { x, y: 2, width: 8, height: height - 2,
      rx: 1, class: "spark-track" }));
    if (agreement === null || agreement === undefined) {
      group.append(set(document.createElementNS(SVG, "rect"), { x, y: height - 2, width: 8, height: 2,
        class: "spark-none" }));
    } else {
      const barH = Math.max(2, agreement * (height - 4));
      group.append(set(document.createElementNS(SVG, "rect"), { x, y: height - barH, width: 8, height: barH,
        rx: 1, class: agreement < 0.8 ? "spark-bar spark-low" : "spark-bar" }));
    }
    const gold = day.gold_accuracy;
    if (gold !== null && gold !== undefined) {
      group.append(set(document.createElementNS(SVG, "circle"), { cx: x + 4, cy: 2 + (1 - gold) * (height - 6),
        r: 2, class: "spark-gold" }));
    }
    const title = document.createElementNS(SVG, "title");
    title.textContent = dayText(day);
    group.append(title);
    root.append(group);
  });
  return root;
}

async function loadQuality() {
  const body = await api("GET", "/stats/reviewers");
  const rowsOf = Array.isArray(body) ? body : body.reviewers || [];
  const tbody = $("#quality-people tbody");
  tbody.replaceChildren(...rowsOf.map((row) => h("tr", { dataset: { reviewer: row.username || who(row.id) } },
    h("td", { class: "name" }, row.username || who(row.id)),
    h("td", { class: "num", dataset: { figure: "agreement_rate" } }, percent(row.agreement_rate)),
    h("td", { class: "num", dataset: { figure: "gold_accuracy" } }, percent(row.gold_accuracy)),
    h("td", { class: "num", dataset: { figure: "audits_done" } }, row.audits_done ?? "–"),
    h("td", { class: `num${row.disputes_open ? " warn" : ""}`, dataset: { figure: "disputes_open" } },
      row.disputes_open ?? "–"),
    h("td", { class: "num", dataset: { figure: "audit_probability" } }, percent(row.audit_probability)),
    h("td", { class: "trend" }, sparkline(row)))));
  $("#quality-empty").hidden = rowsOf.length > 0;
}

// --- refreshing ------------------------------------------------------------------------

async function refresh() {
  if (board.busy) {
    board.again = true;
    return;
  }
  board.busy = true;
  try {
    const [disputes, quality] = await Promise.allSettled([loadDisputes(), loadQuality()]);
    setText($("#disputes-error"), disputes.status === "rejected"
      ? `Could not load the disputes: ${describe(disputes.reason)}` : "");
    setText($("#quality-error"), quality.status === "rejected"
      ? `Could not load the reviewers' quality: ${describe(quality.reason)}` : "");
  } finally {
    board.busy = false;
    if (board.again) {
      board.again = false;
      refreshSoon();
    }
  }
}

function refreshSoon() {
  clearTimeout(board.timer);
  board.timer = setTimeout(refresh, REFRESH_DELAY_MS);
}

/** A board push: names, the queue tiles' audit rates, and a refresh when completions or disputes moved
 * (the lists themselves come from REST: the snapshot names only the oldest disputes). */
function onBoard(snap) {
  if (!snap || !Array.isArray(snap.reviewers)) return;
  board.names = new Map(snap.reviewers.map((r) => [r.id, r.username]));
  for (const queue of snap.queues || []) {
    const tile = document.querySelector(`#queue-tiles li[data-queue="${CSS.escape(queue.name)}"]`);
    if (!tile || queue.audit_rate === undefined) continue;
    let rate = tile.querySelector(".queue-audit-rate");
    if (!rate) {
      rate = h("span", { class: "muted small queue-audit-rate" });
      tile.querySelector(".queue-rule")?.after(rate);
    }
    setText(rate, queue.audit_rate ? `audit rate ${percent(queue.audit_rate)}` : "");
    rate.hidden = !queue.audit_rate;
  }
  // `disputes` ({open, oldest}) moves when one is opened or resolved, by anyone.
  const key = JSON.stringify([snap.reviewers.map((r) => [r.id, r.completed_count, r.disputes_open,
    r.audit_probability]), snap.stats && snap.stats.completed_last_hour, snap.disputes]);
  if (key !== board.key) {
    board.key = key;
    refreshSoon();
  }
}

// --- the queue form's audit rate and the task form -------------------------------------

function initAuditRateField() {
  const input = h("input", { id: "queue-audit-rate", type: "number", min: 0, max: 1, step: 0.05,
    placeholder: "Audit rate 0–1", title: "Share of completed tasks sent to a blind second review "
      + "(the floor: reviewers who disagree more are audited more)" });
  addQueueField({
    node: h("span", { class: "queue-audit-field" },
      h("label", { for: "queue-audit-rate", class: "sr-only" }, "Audit rate (0 to 1)"), input),
    load(queue) {
      input.value = queue.audit_rate ?? "";
    },
    read(body) {
      if (input.validity.badInput) throw new Error("The audit rate must be a number from 0 to 1.");
      if (input.value.trim() === "") return; // unchanged (a new queue: no audits)
      const rate = Number(input.value);
      if (!(rate >= 0 && rate <= 1)) throw new Error("The audit rate must be a number from 0 to 1.");
      body.audit_rate = rate;
    },
  });
}

function initTaskForm() {
  const form = $("#gold-form");
  const error = $("#gold-error");
  const go = $("#gold-go");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setText(error, "");
    const body = { name: $("#gold-name").value.trim() };
    try {
      if (!body.name) throw new Error("Give the task a name.");
      const queue = $("#gold-queue").value.trim();
      if (queue) body.queue = queue;
      const priority = $("#gold-priority");
      if (priority.validity.badInput || (priority.value !== "" && !Number.isInteger(Number(priority.value)))) {
        throw new Error("The priority must be a whole number.");
      }
      if (priority.value !== "") body.priority = Number(priority.value);
      const payload = $("#gold-payload").value.trim();
      if (payload) {
        try {
          body.payload = JSON.parse(payload);
        } catch (problem) {
          throw new Error(`The payload is not valid JSON: ${problem.message}`);
        }
      }
      const expected = $("#gold-expected").value;
      if (expected) body.expected_outcome = expected;
    } catch (problem) {
      setText(error, problem.message);
      return;
    }
    go.disabled = true;
    try {
      const answer = await api("POST", "/tasks", body);
      const task = Array.isArray(answer) ? answer[0] : answer && answer.tasks ? answer.tasks[0] : answer;
      const gold = body.expected_outcome ? ` (gold: ${body.expected_outcome})` : "";
      toast("ok", `Task #${task && task.id} created${gold}.`);
      form.reset();
    } catch (problem) {
      setText(error, `Could not create the task: ${describe(problem)}`);
    } finally {
      go.disabled = false;
    }
  });
}

function initBoardPage() {
  if (!$("#quality-card")) return;
  initAuditRateField();
  initTaskForm();
  onLive("/board", (socket) => socket.on("board", onBoard));
  setInterval(refresh, REFRESH_EVERY_MS);
  refresh();
}

// --- wiring ----------------------------------------------------------------------------

const session = loadSession();
if (session && document.body.classList.contains("page-board")
    && ["supervisor", "admin"].includes(session.user.role)) {
  initBoardPage();
} else if (session && document.body.classList.contains("page-reviewer") && session.user.role === "reviewer") {
  initReviewerPage();
}
