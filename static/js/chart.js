// A bar chart of completions per time bucket (GET /stats/completions), as
// inline SVG (no library): each bar split into passes and fails. Built with
// createElementNS and text nodes only.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * Draw `buckets` ([{start, completed, pass, fail}], oldest first, each
 * `bucketS` seconds wide) into `container`. The container's data-total is
 * the sum shown (what tests and screen readers read).
 */
export function drawBuckets(container, buckets, bucketS, hours) {
  const width = 360;
  const height = 150;
  const pad = { left: 26, right: 4, top: 10, bottom: 22 };
  const count = Math.max(1, buckets.length);
  const peak = Math.max(1, ...buckets.map((b) => b.completed));
  const top = peak <= 4 ? peak : Math.ceil(peak / 5) * 5;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const slot = plotW / count;
  const total = buckets.reduce((sum, b) => sum + b.completed, 0);
  const last = buckets.length ? buckets[buckets.length - 1].completed : 0;

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img",
    "aria-label": `${total} completed in the last ${hours} h, in ${Math.round(bucketS / 60)}-minute `
      + `bars; the latest bar: ${last}`,
  });
  for (const fraction of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - fraction);
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "chart-grid" }));
    const label = Math.round(top * fraction * 10) / 10;
    if (fraction === 0 || Number.isInteger(label)) {
      root.append(svg("text", { x: pad.left - 6, y: y + 3, class: "chart-axis", "text-anchor": "end" },
        String(label)));
    }
  }
  buckets.forEach((bucket, i) => {
    const x = pad.left + i * slot + (slot > 4 ? 0.75 : 0);
    const w = Math.max(1, slot - (slot > 4 ? 1.5 : 0.3));
    const start = Date.parse(bucket.start);
    const group = svg("g", { class: "chart-bucket", "data-start": bucket.start,
      "data-completed": bucket.completed });
    group.append(svg("title", {}, `${clock(start)}–${clock(start + bucketS * 1000)}: `
      + `${bucket.completed} completed (${bucket.pass} pass, ${bucket.fail} fail)`));
    const other = bucket.completed - bucket.pass - bucket.fail;
    let y = pad.top + plotH;
    for (const [n, kind] of [[bucket.pass, "pass"], [bucket.fail, "fail"], [other, "other"]]) {
      if (n <= 0) continue;
      const barH = (n / top) * plotH;
      y -= barH;
      group.append(svg("rect", { x, y, width: w, height: barH, class: `chart-bar chart-bar-${kind}` }));
    }
    root.append(group);
  });
  if (buckets.length) {
    const first = Date.parse(buckets[0].start);
    const labels = [[pad.left, "start", clock(first)],
      [pad.left + plotW / 2, "middle", clock(first + (count * bucketS * 1000) / 2)],
      [width - pad.right, "end", "now"]];
    for (const [x, anchor, text] of labels) {
      root.append(svg("text", { x, y: height - 6, class: "chart-axis", "text-anchor": anchor }, text));
    }
  }
  container.dataset.total = String(total);
  container.replaceChildren(root);
}
