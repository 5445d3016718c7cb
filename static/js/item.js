// The item under review, as the queue's form says to show it: each display
// field by its `as` (image, iframe, link, text, json). Images and frames load
// only from the page's own origin and QC_MEDIA_ORIGINS (the page's
// data-media-origins, the same list as its CSP); any other source becomes a
// placeholder that says why, so no request leaves for it. Payload text is
// only ever text: only http(s) URLs become a src or an href.
import { h } from "./dom.js";
import { renderValue, safeLink } from "./payload.js";

/** The origins media may come from: this page's and QC_MEDIA_ORIGINS. */
export function allowedOrigins(root = document) {
  const holder = root.querySelector("[data-media-origins]");
  const listed = holder ? holder.dataset.mediaOrigins.split(/\s+/).filter(Boolean) : [];
  return new Set([window.location.origin, ...listed]);
}

/** {url} for an http(s) URL from an allowed origin, else {why} (said on the placeholder). */
export function mediaSource(value, allowed) {
  if (typeof value !== "string" || !value.trim()) return { why: "no URL in this field" };
  let url;
  try {
    url = new URL(value.trim());
  } catch {
    return { why: "not a URL" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { why: `not an http(s) URL (${url.protocol})` };
  }
  if (!allowed.has(url.origin)) return { why: `not in QC_MEDIA_ORIGINS: ${url.origin}`, origin: url.origin };
  return { url: url.href };
}

function blocked(kind, value, source) {
  const box = h("div", { class: "pv-blocked", role: "note", dataset: { blocked: source.origin || "" } },
    h("strong", {}, `${kind} not shown`), h("span", { class: "pv-why" }, source.why));
  if (typeof value === "string" && value) {
    box.append(h("span", { class: "pv-src" }, value)); // as text: the reviewer may copy it
  }
  return box;
}

function image(value, allowed, label) {
  const source = mediaSource(value, allowed);
  if (!source.url) return blocked("Image", value, source);
  const img = h("img", { src: source.url, alt: label, referrerpolicy: "no-referrer",
    decoding: "async" });
  const zoom = h("button", { type: "button", class: "pv-zoom", "aria-pressed": "false",
    title: "Click or press Z: fit to the screen / 100 %" }, img);
  const figure = h("figure", { class: "pv-image" }, zoom,
    h("figcaption", { class: "muted small" }, h("span", { class: "pv-zoom-state" }, "Fitted"),
      " · click or Z for 100 % · ", safeLink(source.url, "open")));
  zoom.addEventListener("click", () => toggleZoom(figure));
  img.addEventListener("error", () => {
    figure.replaceWith(blocked("Image", value, { why: "it did not load (missing, or not an image)" }));
  });
  return figure;
}

/** Fitted to the screen <-> actual size (scrolls inside its box). */
export function toggleZoom(figure) {
  const zoomed = figure.classList.toggle("zoomed");
  figure.querySelector(".pv-zoom").setAttribute("aria-pressed", String(zoomed));
  figure.querySelector(".pv-zoom-state").textContent = zoomed ? "100 %" : "Fitted";
}

function frame(value, allowed, label) {
  const source = mediaSource(value, allowed);
  if (!source.url) return blocked("Page", value, source);
  return h("div", { class: "pv-frame" },
    h("iframe", { src: source.url, title: label, referrerpolicy: "no-referrer" }),
    h("p", { class: "muted small" }, safeLink(source.url, "Open in a new tab")));
}

function json(value) {
  if (typeof value === "string") { // a field holding JSON text
    try {
      return renderValue(JSON.parse(value));
    } catch {
      return h("div", { class: "pv-textblock" }, value);
    }
  }
  return renderValue(value);
}

function show(as, value, allowed, label) {
  if (as === "image") return image(value, allowed, label);
  if (as === "iframe") return frame(value, allowed, label);
  if (as === "link") {
    return safeLink(value) || h("span", {}, renderValue(value), " ",
      h("span", { class: "muted small" }, "(not an http(s) link)"));
  }
  if (as === "text") {
    return typeof value === "string" ? h("div", { class: "pv-textblock" }, value) : renderValue(value);
  }
  return json(value);
}

/** The form's display fields of `payload`, in the form's order; `allowed`: allowedOrigins(). */
export function renderItem(display, payload, allowed) {
  const data = payload && typeof payload === "object" && !Array.isArray(payload) ? payload : {};
  return display.map(({ field, as }) => {
    const present = Object.prototype.hasOwnProperty.call(data, field);
    return h("section", { class: `item-field item-${as}`, dataset: { field, as } },
      h("h2", { class: "section-title" }, field),
      present ? show(as, data[field], allowed, field)
        : h("p", { class: "muted" }, "Not in this task's payload."));
  });
}
