// A task's payload, readable: an object becomes a key/value table, anything
// nested is pretty-printed JSON. Only text nodes are made from the payload
// (it may contain HTML); http(s) URLs become links whose text is the URL.
import { h } from "./dom.js";

const URL_PATTERN = /^https?:\/\/\S+$/i;

function valueNode(value) {
  if (value === null) return h("span", { class: "muted" }, "null");
  if (typeof value === "string") {
    if (URL_PATTERN.test(value)) {
      return h("a", { href: value, target: "_blank", rel: "noopener noreferrer nofollow" }, value);
    }
    return h("span", { class: "pv-text" }, value);
  }
  if (typeof value === "object") return h("pre", { class: "pv-json" }, JSON.stringify(value, null, 2));
  return h("span", { class: "pv-scalar" }, String(value));
}

export function renderPayload(payload) {
  if (payload === null || payload === undefined
      || (typeof payload === "object" && !Array.isArray(payload) && Object.keys(payload).length === 0)) {
    return h("p", { class: "muted" }, "No details for this task.");
  }
  if (typeof payload !== "object" || Array.isArray(payload)) {
    return h("pre", { class: "pv-json" }, JSON.stringify(payload, null, 2));
  }
  return h("table", { class: "kv" },
    h("tbody", {}, Object.entries(payload).map(([key, value]) =>
      h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, valueNode(value))))));
}
