// A task's payload, readable: an object becomes a key/value table, arrays and
// nested objects become nested lists (never raw JSON). Only text nodes are
// made from the payload (it may contain HTML); http(s) URLs become links
// whose text is the URL.
import { h } from "./dom.js";

const URL_PATTERN = /^https?:\/\/\S+$/i;
// Deeper than this, the rest of a value is shown as compact JSON text: a
// 64 KiB payload can nest thousands of levels, which no one reads as lists.
const MAX_DEPTH = 12;

/** An <a> for an http(s) URL (opens in a new tab, sends no referrer), else null. */
export function safeLink(value, text = value) {
  if (typeof value !== "string" || !URL_PATTERN.test(value)) return null;
  return h("a", { href: value, target: "_blank", rel: "noopener noreferrer nofollow" }, text);
}

/** Any JSON value as nodes: scalars as text, arrays as <ol>, objects as <ul> of key: value. */
export function renderValue(value, depth = 0) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "null");
  if (typeof value === "string") {
    return safeLink(value) || h("span", { class: "pv-text" }, value);
  }
  if (typeof value !== "object") return h("span", { class: "pv-scalar" }, String(value));
  if (depth >= MAX_DEPTH) return h("code", { class: "pv-deep" }, JSON.stringify(value));
  if (Array.isArray(value)) {
    if (!value.length) return h("span", { class: "muted" }, "(empty list)");
    return h("ol", { class: "pv-list" },
      value.map((item) => h("li", {}, renderValue(item, depth + 1))));
  }
  const entries = Object.entries(value);
  if (!entries.length) return h("span", { class: "muted" }, "(empty)");
  return h("ul", { class: "pv-object" }, entries.map(([key, item]) =>
    h("li", {}, h("span", { class: "pv-key" }, key), " ", renderValue(item, depth + 1))));
}

/** The payload as a key/value table; `skip` leaves out keys shown elsewhere. */
export function renderPayload(payload, skip = new Set()) {
  if (payload === null || payload === undefined
      || (typeof payload === "object" && !Array.isArray(payload) && Object.keys(payload).length === 0)) {
    return h("p", { class: "muted" }, "No details for this task.");
  }
  if (typeof payload !== "object" || Array.isArray(payload)) return renderValue(payload);
  const rows = Object.entries(payload).filter(([key]) => !skip.has(key));
  if (!rows.length) return null;
  return h("table", { class: "kv" },
    h("tbody", {}, rows.map(([key, value]) =>
      h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, renderValue(value))))));
}
