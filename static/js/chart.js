// A small bar chart of completions per minute, as inline SVG (no library).
// Built with createElementNS and text nodes only.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draw `minutes` bars ending at `nowMinute` (minutes since the epoch) from
 * `counts` (Map minute -> completions) into `container`.
 */
export function drawPerMinute(container, counts, nowMinute, minutes = 30) {
  const width = 360;
  const height = 140;
  const pad = { left: 26, right: 4, top: 10, bottom: 22 };
  const values = [];
  for (let m = nowMinute - minutes + 1; m <= nowMinute; m++) values.push([m, counts.get(m) || 0]);
  const peak = Math.max(1, ...values.map(([, n]) => n));
  const top = peak <= 4 ? peak : Math.ceil(peak / 5) * 5;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const slot = plotW / minutes;

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img",
    "aria-label": `Completions per minute over the last ${minutes} minutes; `
      + `this minute: ${values[values.length - 1][1]}`,
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
  values.forEach(([minute, n], i) => {
    const barH = (n / top) * plotH;
    const x = pad.left + i * slot + 1.5;
    const bar = svg("rect", {
      x, y: pad.top + plotH - barH, width: Math.max(1, slot - 3), height: Math.max(0, barH), rx: 2,
      class: i === values.length - 1 ? "chart-bar chart-bar-now" : "chart-bar",
    });
    const clock = new Date(minute * 60000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    bar.append(svg("title", {}, `${clock}: ${n} completed`));
    root.append(bar);
  });
  const half = Math.floor(minutes / 2);
  const labels = [[0, `${minutes} min ago`], [half, `${minutes - half} min ago`], [minutes - 1, "now"]];
  for (const [i, text] of labels) {
    root.append(svg("text", {
      x: i === 0 ? pad.left : i === minutes - 1 ? width - pad.right : pad.left + i * slot + slot / 2,
      y: height - 6, class: "chart-axis",
      "text-anchor": i === 0 ? "start" : i === minutes - 1 ? "end" : "middle",
    }, text));
  }
  container.replaceChildren(root);
}
