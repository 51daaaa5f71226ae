// The drawing kit, front-end side: SVG markup from plain data.
//
// A line-by-line mirror of tfgrad_widgets/svg.py (figureSVG is figure_svg, graphLayout is
// graph_layout, ...): the same arithmetic in the same order, the same number formatting, the
// same element order, so that the live view and the static snapshot of a widget are the same
// picture (tests/browser/test_kit_agreement.py compares them). Change one, change the other.
//
// The constant THEME (tfgrad_widgets/theme.py) is written above this file by
// tfgrad_widgets.base.esm_source; the widget's own view module follows it.

const SVG_NS = 'xmlns="http://www.w3.org/2000/svg"';
const PALETTE = THEME.palette;

// ---- Numbers and text ----------------------------------------------------------------------
function num(v) {
  // A coordinate, rounded to 0.1 px (half up); String() writes what Python's repr() writes.
  const r = Math.floor(v * 10 + 0.5) / 10;
  return String(r === 0 ? 0 : r);
}

function trim(s) {
  if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
  return s === "-0" || s === "" ? "0" : s;
}

function fmt(v, digits = 3) {
  // digits significant digits, plain between 1e-4 and 1e6, "1.23e-7" outside; "" if missing.
  if (v === null || v === undefined || !Number.isFinite(v)) return "";
  if (v === 0) return "0";
  const [mantissa, exponent] = v.toExponential(digits - 1).split("e");
  const e = parseInt(exponent, 10);
  if (e >= -4 && e < 6) return trim(v.toFixed(Math.max(0, digits - 1 - e)));
  return trim(mantissa) + "e" + String(e);
}

function esc(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function textWidth(s, size) {
  return s.length * size * THEME.char;
}

function clip(s, width, size) {
  // s, cut short with an ellipsis if it would be wider than width px
  if (textWidth(s, size) <= width) return s;
  return s.slice(0, Math.max(1, Math.floor(width / (size * THEME.char)) - 1)) + "…";
}

function text(x, y, s, css, anchor = "") {
  const a = anchor ? ` text-anchor="${anchor}"` : "";
  return `<text class="${css}" x="${num(x)}" y="${num(y)}"${a}>${esc(s)}</text>`;
}

function color(index) {
  return PALETTE[(index || 0) % PALETTE.length];
}

// ---- Scales and ticks ----------------------------------------------------------------------
function pow10(k) {
  // By repeated products: exact up to 1e22, the same bits as in Python (pow() differs).
  let p = 1.0;
  for (let i = 0; i < Math.abs(k); i++) p *= 10;
  return k >= 0 ? p : 1 / p;
}

function decade(v) {
  let k = Math.floor(Math.log10(v));
  if (pow10(k) > v) k -= 1;
  else if (pow10(k + 1) <= v) k += 1;
  return k;
}

function finite(values) {
  return values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
}

function domain(values, scale, given = null, includeZero = false) {
  if (given && given.length) return [given[0], given[1]];
  values = finite(values);
  if (scale === "log") {
    values = values.filter((v) => v > 0);
    if (!values.length) return [1, 10];
    const lo = pow10(decade(Math.min(...values)));
    let hi = Math.max(...values);
    const k = decade(hi);
    hi = pow10(k) === hi ? pow10(k) : pow10(k + 1);
    return hi <= lo ? [lo, lo * 10] : [lo, hi];
  }
  if (includeZero) values = [...values, 0];
  if (!values.length) return [0, 1];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (lo === hi) return [lo - 1, hi + 1];
  const margin = (hi - lo) * 0.05;
  return [lo - margin, hi + margin];
}

function scaleMap(scale, d0, d1, r0, r1) {
  if (scale === "log") {
    const l0 = Math.log10(d0);
    const l1 = Math.log10(d1);
    return (v) => (v === null || v === undefined || v <= 0 ? null
      : r0 + (Math.log10(v) - l0) * (r1 - r0) / (l1 - l0));
  }
  return (v) => (v === null || v === undefined ? null : r0 + (v - d0) * (r1 - r0) / (d1 - d0));
}

function linearTicks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [[lo], 0];
  const raw = span / count;
  let k = decade(raw);
  const f = raw / pow10(k);
  let m = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
  if (m === 10) {
    m = 1;
    k += 1;
  }
  const step = k >= 0 ? m * pow10(k) : m / pow10(-k);
  const first = Math.ceil(lo / step - 1e-9);
  const last = Math.floor(hi / step + 1e-9);
  const values = [];
  for (let i = first; i <= last; i++) values.push(i * step);
  return [values, k];
}

function tickLabel(v, k) {
  if (Math.abs(v) >= 1e6 || (v !== 0 && k < -4)) return fmt(v, 3);
  return trim(v.toFixed(Math.max(0, -k)));
}

const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷",
  8: "⁸", 9: "⁹" };

function powerLabel(k) {
  if (k >= 0 && k <= 2) return String(pow10(k));
  return "10" + [...String(k)].map((c) => SUPERSCRIPT[c]).join("");
}

function logTicks(lo, hi) {
  let k0 = decade(lo);
  const k1 = decade(hi);
  if (pow10(k0) < lo) k0 += 1;
  const powers = [];
  for (let k = k0; k <= k1; k++) powers.push(k);
  if (powers.length >= 2) {
    const every = Math.ceil(powers.length / 7);
    return powers.filter((_, i) => i % every === 0).map((k) => [pow10(k), powerLabel(k)]);
  }
  const ticks = [];
  for (let k = decade(lo); k <= k1; k++) {
    for (const m of [1, 2, 5]) {
      const v = k >= 0 ? m * pow10(k) : m / pow10(-k);
      if (lo <= v && v <= hi) ticks.push([v, fmt(v, 1)]);
    }
  }
  return ticks;
}

function axisTicks(scale, lo, hi, count) {
  if (scale === "log") return logTicks(lo, hi);
  const [values, k] = linearTicks(lo, hi, count);
  return values.map((v) => [v, tickLabel(v, k)]);
}

function mix(a, b, t) {
  let out = "#";
  for (const i of [1, 3, 5]) {
    const ca = parseInt(a.slice(i, i + 2), 16);
    const cb = parseInt(b.slice(i, i + 2), 16);
    out += Math.floor(ca + (cb - ca) * t + 0.5).toString(16).padStart(2, "0");
  }
  return out;
}

function heatColor(v, lo, hi, kind) {
  if (v === null || v === undefined) return THEME.fill.const;
  if (kind === "diverging") {
    const [low, mid, high] = THEME.diverging;
    const bound = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    const t = Math.max(-1, Math.min(1, v / bound));
    return t >= 0 ? mix(mid, high, t) : mix(mid, low, -t);
  }
  const [low, high] = THEME.sequential;
  const t = hi === lo ? 0 : Math.max(0, Math.min(1, (v - lo) / (hi - lo)));
  return mix(low, high, t);
}

// ---- The figure ----------------------------------------------------------------------------
const MARGIN = { left: 58, right: 14, top: 26, bottom: 40 };

function figureSVG(figure, view, width) {
  const panels = figure.panels || [];
  const gap = THEME.gap;
  let columns = Math.max(1, Math.min(figure.columns || 1, panels.length || 1));
  if (width < columns * THEME.min_panel) columns = 1;
  const panelW = (width - (columns - 1) * gap) / columns;
  const top = figure.title ? 26 : 0;
  const parts = [];
  let y = top;
  for (let start = 0; start < panels.length; start += columns) {
    const row = panels.slice(start, start + columns);
    const heights = row.map((p) => panelHeight(p, panelW));
    row.forEach((panel, i) => {
      parts.push(panelSVG(panel, view, i * (panelW + gap), y, panelW, heights[i]));
    });
    y += Math.max(...heights) + gap;
  }
  const height = Math.max(y - gap, top);
  const head = `<svg ${SVG_NS} class="tfgrad-svg tf-figure" width="${num(width)}" ` +
    `height="${num(height)}" viewBox="0 0 ${num(width)} ${num(height)}">`;
  const title = figure.title ? text(0, 18, figure.title, "tf-figtitle") : "";
  return head + title + parts.join("") + "</svg>";
}

function panelLayout(figure, width) {
  // Where each panel sits (for turning a pointer position into data): mirrors figureSVG.
  const panels = figure.panels || [];
  const gap = THEME.gap;
  let columns = Math.max(1, Math.min(figure.columns || 1, panels.length || 1));
  if (width < columns * THEME.min_panel) columns = 1;
  const panelW = (width - (columns - 1) * gap) / columns;
  const boxes = new Map();
  let y = figure.title ? 26 : 0;
  for (let start = 0; start < panels.length; start += columns) {
    const row = panels.slice(start, start + columns);
    const heights = row.map((p) => panelHeight(p, panelW));
    row.forEach((panel, i) => {
      boxes.set(panel.id || "", { x: i * (panelW + gap), y, w: panelW, h: heights[i], panel });
    });
    y += Math.max(...heights) + gap;
  }
  return boxes;
}

function panelHeight(panel, panelW) {
  let height;
  if (panel.height) {
    height = panel.height;
  } else if (panel.kind === "timeline") {
    height = MARGIN.top + 28 * Math.max(1, (panel.lanes || []).length) + MARGIN.bottom;
  } else {
    height = THEME.panel_height;
  }
  return height + legendBelowHeight(panel, panelW - MARGIN.left - MARGIN.right);
}

function panelSVG(panel, view, x, y, w, h) {
  const kind = panel.kind || "xy";
  const draw = { xy: xyBody, heatmap: heatmapBody, bars: barsBody, timeline: timelineBody }[kind];
  const head = `<g class="tf-panel tf-${kind}" data-panel="${esc(panel.id || "")}" ` +
    `transform="translate(${num(x)},${num(y)})">`;
  const title = panel.title ? text(0, 15, panel.title, "tf-title") : "";
  return head + title + draw(panel, view, w, h) + "</g>";
}

function plotBox(w, h, right = MARGIN.right, left = MARGIN.left) {
  return [left, MARGIN.top, w - left - right, h - MARGIN.top - MARGIN.bottom];
}

function frame(left, top, pw, ph, xTicks, yTicks, xLabel, yLabel) {
  const out = [`<rect class="tf-plot" x="${num(left)}" y="${num(top)}" width="${num(pw)}" ` +
    `height="${num(ph)}"/>`];
  let grid = xTicks.map(([px]) => `M${num(px)} ${num(top)}V${num(top + ph)}`).join("");
  grid += yTicks.map(([py]) => `M${num(left)} ${num(py)}H${num(left + pw)}`).join("");
  if (grid) out.push(`<path class="tf-grid" d="${grid}"/>`);
  const small = THEME.small;
  for (const [px, label] of xTicks) out.push(text(px, top + ph + small + 4, label, "tf-tick", "middle"));
  for (const [py, label] of yTicks) out.push(text(left - 6, py + small * 0.35, label, "tf-tick", "end"));
  if (xLabel) out.push(text(left + pw / 2, top + ph + 2 * small + 10, xLabel, "tf-label", "middle"));
  if (yLabel) {
    out.push(`<text class="tf-label" transform="translate(${num(12)},${num(top + ph / 2)}) ` +
      `rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  }
  return out.join("");
}

function axisValues(panel, axis) {
  let values = [];
  for (const layer of panel.layers || []) {
    const kind = layer.kind || "line";
    if (["line", "scatter", "point", "path"].includes(kind)) {
      values = values.concat(kind !== "point" ? layer[axis] || [] : [layer[axis]]);
    } else if (kind === "arrow") {
      for (const arrow of layer.arrows || []) values.push(arrow[axis], arrow[axis] + arrow["d" + axis]);
    }
  }
  return values;
}

function xyGeometry(panel, view, w, h) {
  const pid = panel.id || "";
  const [left, top, pw, box] = plotBox(w, h);
  const ph = box - legendBelowHeight(panel, pw);
  const g = { left, top, pw, ph };
  for (const [axis, r0, r1] of [["x", left, left + pw], ["y", top + ph, top]]) {
    const spec = panel[axis] || {};
    const key = `${pid}.${axis}scale`;
    const scale = key in view ? view[key] : spec.scale || "linear";
    const [lo, hi] = domain(axisValues(panel, axis), scale, spec.domain);
    g[axis] = { scale, lo, hi, r0, r1, map: scaleMap(scale, lo, hi, r0, r1) };
  }
  return g;
}

function invert(axis, px) {
  // Pixels back to data, for a drag.
  const t = (px - axis.r0) / (axis.r1 - axis.r0);
  if (axis.scale === "log") {
    const l0 = Math.log10(axis.lo);
    return Math.pow(10, l0 + t * (Math.log10(axis.hi) - l0));
  }
  return axis.lo + t * (axis.hi - axis.lo);
}

function xyBody(panel, view, w, h) {
  const pid = panel.id || "";
  const g = xyGeometry(panel, view, w, h);
  const fx = g.x.map;
  const fy = g.y.map;
  const xTicks = axisTicks(g.x.scale, g.x.lo, g.x.hi, Math.max(2, Math.floor(g.pw / 80)))
    .map(([v, s]) => [fx(v), s]);
  const yTicks = axisTicks(g.y.scale, g.y.lo, g.y.hi, Math.max(2, Math.floor(g.ph / 50)))
    .map(([v, s]) => [fy(v), s]);
  const xs = panel.x || {};
  const ys = panel.y || {};
  const out = [frame(g.left, g.top, g.pw, g.ph, xTicks, yTicks, xs.label || "", ys.label || "")];
  (panel.layers || []).forEach((layer, index) => {
    const kind = layer.kind || "line";
    const c = "color" in layer ? layer.color : index;
    const css = color(c);
    const lid = esc(layer.id || String(index));
    if (kind === "line" || kind === "path") {
      out.push(clipToPlot(g, line(layer, fx, fy, css, lid, kind)));
    } else if (kind === "scatter") {
      const key = `${pid}.${layer.id || String(index)}`;
      const chosen = key in view ? view[key] : layer.selected ?? null;
      out.push(scatter(layer, fx, fy, css, lid, chosen));
    } else if (kind === "arrow") {
      out.push(clipToPlot(g, arrows(layer, fx, fy, css, lid)));
    } else if (kind === "point") { // where the student dragged it, else where the data puts it
      const key = `${pid}.${layer.id || String(index)}`;
      const [x, y] = key in view ? view[key] : [layer.x ?? null, layer.y ?? null];
      const px = fx(x);
      const py = fy(y);
      if (px !== null && py !== null) {
        out.push(`<circle class="tf-handle" data-layer="${lid}" cx="${num(px)}" ` +
          `cy="${num(py)}" r="7" fill="${css}"/>`);
      }
    }
  });
  const entries = legendEntries(panel);
  if (panel.legend === "below") {
    out.push(legendBelow(legendRows(entries, g.pw), g.left, g.top + g.ph + MARGIN.bottom));
  } else {
    out.push(legendSVG(entries, g.left + g.pw - 8, g.top + 8));
  }
  return out.join("");
}

function clipToPlot(g, body) {
  // body cut at the plot's edges: a nested <svg> whose viewBox is the plot box (no clipPath id)
  if (!body) return "";
  const box = `${num(g.left)} ${num(g.top)} ${num(g.pw)} ${num(g.ph)}`;
  return `<svg class="tf-clip" x="${num(g.left)}" y="${num(g.top)}" ` +
    `width="${num(g.pw)}" height="${num(g.ph)}" viewBox="${box}" ` +
    `overflow="hidden">${body}</svg>`;
}

function legendEntries(panel) {
  const entries = [];
  (panel.layers || []).forEach((layer, index) => {
    const kind = layer.kind || "line";
    const css = color("color" in layer ? layer.color : index);
    if (layer.label) entries.push([layer.label, css, layer.dash ? "dash" : kind]);
    if (kind === "line" && layer.markers && layer.markers.length && layer.marker_label) {
      entries.push([layer.marker_label, css, "marker"]);
    }
  });
  return entries;
}

function legendRows(entries, width) {
  const size = THEME.small;
  const rows = [];
  let row = [];
  let x = 0;
  for (const entry of entries) {
    const wide = 26 + textWidth(entry[0], size);
    if (row.length && x + wide > width) {
      rows.push(row);
      row = [];
      x = 0;
    }
    row.push([x, entry]);
    x += wide + 16;
  }
  if (row.length) rows.push(row);
  return rows;
}

function legendBelowHeight(panel, pw) {
  if ((panel.kind || "xy") !== "xy" || panel.legend !== "below") return 0;
  const rows = legendRows(legendEntries(panel), pw);
  return rows.length ? rows.length * (THEME.small + 6) + 4 : 0;
}

function legendBelow(rows, left, top) {
  if (!rows.length) return "";
  const size = THEME.small;
  const out = ['<g class="tf-legend tf-legend-below">'];
  rows.forEach((row, r) => {
    const y = top + r * (size + 6) + size * 0.5;
    for (const [offset, [label, css, kind]] of row) {
      const x = left + offset;
      if (kind === "marker") {
        out.push(`<path class="tf-markers" d="${markerPath(x + 9, y)}" stroke="${css}"/>`);
      } else if (kind === "scatter" || kind === "point") {
        out.push(`<circle cx="${num(x + 9)}" cy="${num(y)}" r="4" fill="${css}"/>`);
      } else {
        const dash = kind === "dash" ? ' stroke-dasharray="5 4"' : "";
        out.push(`<path class="tf-line" d="M${num(x)} ${num(y)}H${num(x + 18)}" stroke="${css}"${dash}/>`);
      }
      out.push(text(x + 26, y + size * 0.35, label, "tf-key"));
    }
  });
  return out.join("") + "</g>";
}

function points(layer, fx, fy) {
  const xs = layer.x || [];
  const ys = layer.y || [];
  const out = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) out.push([fx(xs[i]), fy(ys[i])]);
  return out;
}

function polyline(pts) {
  let d = "";
  let pen = false;
  for (const [px, py] of pts) {
    if (px === null || py === null) {
      pen = false;
      continue;
    }
    d += (pen ? "L" : "M") + `${num(px)} ${num(py)}`;
    pen = true;
  }
  return d;
}

function line(layer, fx, fy, css, lid, kind) {
  const pts = points(layer, fx, fy);
  const dash = layer.dash ? ' stroke-dasharray="5 4"' : "";
  let out = `<path class="tf-${kind}" data-layer="${lid}" d="${polyline(pts)}" stroke="${css}"${dash}/>`;
  const marks = (layer.markers || []).filter((i) => i >= 0 && i < pts.length).map((i) => pts[i]);
  const d = marks.filter(([px, py]) => px !== null && py !== null)
    .map(([px, py]) => markerPath(px, py)).join("");
  if (d) out += `<path class="tf-markers" d="${d}" stroke="${css}"/>`;
  return out;
}

function markerPath(px, py) {
  return `M${num(px - 5)} ${num(py - 5)}L${num(px + 5)} ${num(py + 5)}` +
    `M${num(px - 5)} ${num(py + 5)}L${num(px + 5)} ${num(py - 5)}`;
}

function scatter(layer, fx, fy, css, lid, chosen) {
  const pts = points(layer, fx, fy);
  const out = [];
  if (layer.connect) out.push(`<path class="tf-line tf-frontier" d="${polyline(pts)}" stroke="${css}"/>`);
  const labels = layer.labels || [];
  const pick = layer.selectable || false;
  pts.forEach(([px, py], i) => {
    if (px === null || py === null) return;
    const extra = pick ? " tf-pick" : "";
    if (i === chosen) {
      out.push(`<circle class="tf-pt tf-chosen${extra}" data-layer="${lid}" data-i="${i}" ` +
        `cx="${num(px)}" cy="${num(py)}" r="7" fill="${css}"/>`);
      if (i < labels.length) out.push(text(px + 10, py - 8, labels[i], "tf-note"));
    } else {
      out.push(`<circle class="tf-pt${extra}" data-layer="${lid}" data-i="${i}" ` +
        `cx="${num(px)}" cy="${num(py)}" r="4" fill="${css}"/>`);
    }
  });
  return out.join("");
}

function arrows(layer, fx, fy, css, lid) {
  const out = [];
  for (const arrow of layer.arrows || []) {
    const x1 = fx(arrow.x);
    const y1 = fy(arrow.y);
    const x2 = fx(arrow.x + arrow.dx);
    const y2 = fy(arrow.y + arrow.dy);
    if ([x1, y1, x2, y2].includes(null)) continue;
    const shaft = `M${num(x1)} ${num(y1)}L${num(x2)} ${num(y2)}`;
    out.push(`<path class="tf-arrow" data-layer="${lid}" d="${shaft}" stroke="${css}"/>`);
    out.push(tip(x1, y1, x2, y2, css));
  }
  return out.join("");
}

function tip(x1, y1, x2, y2, css, size = 9) {
  const dx = x2 - x1;
  const dy = y2 - y1;
  const length = Math.sqrt(dx * dx + dy * dy);
  if (length === 0) return "";
  const ux = dx / length;
  const uy = dy / length;
  const bx = x2 - ux * size;
  const by = y2 - uy * size;
  const half = size * 0.45;
  return `<path class="tf-tip" d="M${num(x2)} ${num(y2)}L${num(bx - uy * half)} ` +
    `${num(by + ux * half)}L${num(bx + uy * half)} ${num(by - ux * half)}Z" fill="${css}"/>`;
}

function legendSVG(entries, right, top) {
  if (!entries.length) return "";
  const size = THEME.small;
  const wide = Math.max(...entries.map(([label]) => textWidth(label, size))) + 36;
  const out = ['<g class="tf-legend">', `<rect class="tf-key-box" x="${num(right - wide + 4)}" ` +
    `y="${num(top - 4)}" width="${num(wide)}" height="${num(entries.length * (size + 6) + 4)}" ` +
    'rx="3"/>'];
  entries.forEach(([label, css, kind], i) => {
    const y = top + i * (size + 6) + size * 0.5;
    const tx = right - textWidth(label, size);
    out.push(text(right, y + size * 0.35, label, "tf-key", "end"));
    if (kind === "marker") {
      out.push(`<path class="tf-markers" d="${markerPath(tx - 14, y)}" stroke="${css}"/>`);
    } else if (kind === "scatter" || kind === "point") {
      out.push(`<circle cx="${num(tx - 14)}" cy="${num(y)}" r="4" fill="${css}"/>`);
    } else {
      const dash = kind === "dash" ? ' stroke-dasharray="5 4"' : "";
      out.push(`<path class="tf-line" d="M${num(tx - 24)} ${num(y)}H${num(tx - 6)}" stroke="${css}"${dash}/>`);
    }
  });
  return out.join("") + "</g>";
}

function heatmapBody(panel, view, w, h) {
  const values = panel.values || [];
  const rows = values.length;
  const cols = rows ? Math.max(...values.map((r) => r.length)) : 0;
  const [left, top, pw, ph] = plotBox(w, h, 78, 46);
  if (!rows || !cols) return "";
  const cell = Math.min(pw / cols, ph / rows);
  const flat = finite(values.flat());
  let lo = flat.length ? Math.min(...flat) : 0;
  let hi = flat.length ? Math.max(...flat) : 1;
  const kind = panel.scale || "diverging";
  const out = [];
  values.forEach((row, i) => {
    row.forEach((v, j) => {
      out.push(`<rect class="tf-cell" x="${num(left + j * cell)}" y="${num(top + i * cell)}"` +
        ` width="${num(cell)}" height="${num(cell)}" fill="${heatColor(v, lo, hi, kind)}"/>`);
    });
  });
  out.push(`<rect class="tf-outline" x="${num(left)}" y="${num(top)}" ` +
    `width="${num(cols * cell)}" height="${num(rows * cell)}"/>`);
  out.push(cellLabels(panel.x_labels, cols, cell, left, top + rows * cell, "x"));
  out.push(cellLabels(panel.y_labels, rows, cell, left, top, "y"));
  if (kind === "diverging") {
    const bound = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    lo = -bound;
    hi = bound;
  }
  const barX = left + cols * cell + 18;
  const barH = rows * cell;
  const bands = 32;
  for (let b = 0; b < bands; b++) {
    const v = hi - (hi - lo) * (b + 0.5) / bands;
    out.push(`<rect class="tf-band" x="${num(barX)}" y="${num(top + barH * b / bands)}" ` +
      `width="12" height="${num(barH / bands + 0.5)}" fill="${heatColor(v, lo, hi, kind)}"/>`);
  }
  out.push(`<rect class="tf-outline" x="${num(barX)}" y="${num(top)}" width="12" height="${num(barH)}"/>`);
  const small = THEME.small;
  for (const [v, py] of [[hi, top], [(hi + lo) / 2, top + barH / 2], [lo, top + barH]]) {
    out.push(text(barX + 16, py + small * 0.35, fmt(v), "tf-tick"));
  }
  if (panel.colorbar) out.push(text(barX, top - 8, panel.colorbar, "tf-tick"));
  return out.join("");
}

function cellLabels(labels, n, cell, x0, y0, axis) {
  if (!labels || !labels.length) return "";
  const size = THEME.small;
  const need = axis === "x" ? Math.max(...labels.map((s) => textWidth(String(s), size))) + 4 : size + 2;
  const every = Math.max(1, Math.ceil(need / cell));
  const out = [];
  for (let i = 0; i < Math.min(n, labels.length); i += every) {
    if (axis === "x") {
      out.push(text(x0 + (i + 0.5) * cell, y0 + size + 4, String(labels[i]), "tf-tick", "middle"));
    } else {
      out.push(text(x0 - 6, y0 + (i + 0.5) * cell + size * 0.35, String(labels[i]), "tf-tick", "end"));
    }
  }
  return out.join("");
}

function barsBody(panel, view, w, h) {
  const pid = panel.id || "";
  const labels = panel.labels || [];
  const values = panel.values || [];
  const [left, top, pw, ph] = plotBox(w, h);
  const spec = panel.y || {};
  const key = `${pid}.yscale`;
  const scale = key in view ? view[key] : spec.scale || "linear";
  const [lo, hi] = domain(values, scale, spec.domain, scale !== "log");
  const fy = scaleMap(scale, lo, hi, top + ph, top);
  const yTicks = axisTicks(scale, lo, hi, Math.max(2, Math.floor(ph / 50))).map(([v, s]) => [fy(v), s]);
  const n = Math.max(1, values.length);
  const band = pw / n;
  const size = THEME.small;
  const need = (labels.length ? Math.max(...labels.map((s) => textWidth(String(s), size))) : 0) + 6;
  const every = Math.max(1, Math.ceil(need / band));
  const xTicks = [];
  for (let i = 0; i < labels.length; i += every) xTicks.push([left + (i + 0.5) * band, String(labels[i])]);
  const out = [frame(left, top, pw, ph, [], yTicks, (panel.x || {}).label || "", spec.label || "")];
  for (const [px, label] of xTicks) out.push(text(px, top + ph + size + 4, label, "tf-tick", "middle"));
  const base = scale === "log" ? fy(lo) : fy(0);
  const chosen = new Set(panel.highlight || []);
  const c = panel.color ?? 0;
  values.forEach((v, i) => {
    const py = v !== null && v !== undefined ? fy(v) : null;
    if (py === null) return;
    const x = left + i * band + band * 0.15;
    const fill = chosen.has(i) ? color(c + 1) : color(c);
    const extra = chosen.has(i) ? " tf-hl" : "";
    out.push(`<rect class="tf-bar${extra}" data-i="${i}" x="${num(x)}" ` +
      `y="${num(Math.min(py, base))}" width="${num(band * 0.7)}" ` +
      `height="${num(Math.abs(base - py))}" fill="${fill}"/>`);
    if (band >= textWidth(fmt(v), size) + 4) {
      const ty = v >= 0 || scale === "log" ? Math.min(py, base) - 4 : Math.max(py, base) + size;
      out.push(text(x + band * 0.35, ty, fmt(v), "tf-note", "middle"));
    }
  });
  return out.join("");
}

function timelineBody(panel, view, w, h) {
  const lanes = panel.lanes || [];
  const size = THEME.small;
  const widest = lanes.length ? Math.max(...lanes.map((s) => textWidth(s, size))) : 0;
  const [left, top, pw, ph] = plotBox(w, h, MARGIN.right, Math.min(140, widest + 14));
  const spans = panel.spans || [];
  const spec = panel.x || {};
  const [lo, hi] = domain(spans.flatMap((s) => [s.start, s.end]), "linear", spec.domain, true);
  const fx = scaleMap("linear", lo, hi, left, left + pw);
  const [values, k] = linearTicks(lo, hi, Math.max(2, Math.floor(pw / 80)));
  const out = [frame(left, top, pw, ph, values.map((v) => [fx(v), tickLabel(v, k)]), [],
    spec.label || "", "")];
  const laneH = ph / Math.max(1, lanes.length);
  lanes.forEach((lane, i) => {
    out.push(text(left - 6, top + (i + 0.5) * laneH + size * 0.35, lane, "tf-tick", "end"));
  });
  const chosen = new Set(panel.highlight || []);
  spans.forEach((span, i) => {
    const x1 = fx(span.start);
    const x2 = fx(span.end);
    const y = top + (span.lane || 0) * laneH + laneH * 0.15;
    const extra = chosen.has(i) ? " tf-hl" : "";
    out.push(`<rect class="tf-span${extra}" data-i="${i}" x="${num(x1)}" y="${num(y)}" ` +
      `width="${num(Math.max(1, x2 - x1))}" height="${num(laneH * 0.7)}" ` +
      `fill="${color(span.color || 0)}"/>`);
    const label = span.label || "";
    if (label && x2 - x1 >= textWidth(label, size) + 8) {
      out.push(text((x1 + x2) / 2, y + laneH * 0.35 + size * 0.35, label, "tf-inside", "middle"));
    }
  });
  return out.join("");
}

// ---- The tape graph ------------------------------------------------------------------------
function owningScope(scope, collapsed) {
  const parts = scope ? scope.split("/") : [];
  for (let i = 1; i <= parts.length; i++) {
    const name = parts.slice(0, i).join("/");
    if (collapsed.has(name)) return name;
  }
  return null;
}

function graphLayout(graph, collapsed) {
  const closed = new Set(collapsed);
  const items = new Map();
  const owner = new Map();
  for (const node of graph.nodes) {
    const box = owningScope(node.scope || "", closed);
    if (box === null) {
      items.set(node.id, { id: node.id, layer: node.layer, band: node.scope || "", node });
      owner.set(node.id, node.id);
    } else {
      const key = "scope:" + box;
      if (!items.has(key)) items.set(key, { id: key, layer: node.layer, band: box, scope: box, count: 0 });
      const item = items.get(key);
      item.layer = Math.min(item.layer, node.layer);
      item.count += node.kind === "op" ? 1 : 0;
      owner.set(node.id, key);
    }
  }
  const layers = [...new Set([...items.values()].map((it) => it.layer))].sort((a, b) => a - b);
  const column = new Map(layers.map((layer, i) => [layer, i]));
  const bands = new Map();
  for (const item of items.values()) {
    item.col = column.get(item.layer);
    if (!bands.has(item.band)) bands.set(item.band, { used: new Map(), c0: item.col, c1: item.col });
    const band = bands.get(item.band);
    item.local = band.used.get(item.col) || 0;
    band.used.set(item.col, item.local + 1);
    band.c0 = Math.min(band.c0, item.col);
    band.c1 = Math.max(band.c1, item.col);
  }
  const skyline = new Map();
  for (const band of bands.values()) {
    let offset = 0;
    for (let c = band.c0; c <= band.c1; c++) offset = Math.max(offset, skyline.get(c) || 0);
    band.offset = offset;
    const height = Math.max(...band.used.values());
    for (let c = band.c0; c <= band.c1; c++) skyline.set(c, offset + height);
  }
  const pad = THEME.pad;
  const top = THEME.pad + 18;
  const pitchX = THEME.node_w + THEME.col_gap;
  const pitchY = THEME.node_h + THEME.row_gap;
  for (const item of items.values()) {
    item.x = pad + item.col * pitchX;
    item.y = top + (bands.get(item.band).offset + item.local) * pitchY;
  }
  const width = column.size ? pad * 2 + column.size * pitchX - THEME.col_gap : pad * 2;
  const rows = skyline.size ? Math.max(...skyline.values()) : 0;
  const height = rows ? top + rows * pitchY - THEME.row_gap + pad : top + pad;
  return { items, owner, width, height };
}

function graphSVG(graph, layout, state) {
  const { items, owner } = layout;
  const shown = new Set((state.visible || []).filter((n) => owner.has(n)).map((n) => owner.get(n)));
  const active = owner.get(state.active || "");
  const flow = state.flow || "rev";
  const symbol = flow === "fwd" ? "ṫ" : "ḡ";
  const values = state.values || {};
  const w = layout.width;
  const h = layout.height;
  const out = [`<svg ${SVG_NS} class="tfgrad-svg tf-graph" width="${num(w)}" height="${num(h)}" ` +
    `viewBox="0 0 ${num(w)} ${num(h)}">`];
  out.push(...scopeFrames(graph, items, shown));
  out.push(...graphEdges(graph, layout, shown, state.edge, flow));
  const nw = THEME.node_w;
  const nh = THEME.node_h;
  for (const item of items.values()) {
    const hidden = shown.has(item.id) ? "" : " tf-hidden";
    const on = item.id === active ? " tf-active" : "";
    const move = `transform="translate(${num(item.x)},${num(item.y)})"`;
    if ("scope" in item) {
      const name = item.scope.split("/").pop();
      const ops = `${item.count} op` + (item.count === 1 ? "" : "s");
      out.push(`<g class="tf-node tf-box${on}${hidden}" data-scope="${esc(item.scope)}" ${move}>` +
        `<title>${esc(item.scope)}: ${ops}; click to open</title>` +
        `<rect width="${nw}" height="${nh}" rx="6"/>` +
        text(8, 17, "▸ " + name, "tf-head") + text(8, 35, ops, "tf-value") + "</g>");
      continue;
    }
    const node = item.node;
    const value = values[node.id] || "";
    const room = nw - 14;
    const size = THEME.font;
    out.push(`<g class="tf-node tf-${node.kind}${on}${hidden}" data-id="${esc(node.id)}" ${move}>` +
      // The hover text also holds this step's derivative, which the box may cut short.
      `<title>${esc((node.title || "") + (value ? `; ${symbol} = ${value}` : ""))}</title>` +
      `<rect width="${nw}" height="${nh}" rx="6"/>` +
      text(8, 17, clip(node.head ?? node.label, room, size), "tf-head") +
      text(8, 35, clip("= " + (node.value || ""), room, size), "tf-value") +
      text(8, 52, value ? clip(`${symbol} = ${value}`, room, size) : "", `tf-adj tf-${flow}`) + "</g>");
  }
  return out.join("") + "</svg>";
}

function scopeMembers(items) {
  // scope path -> the items inside it (a node's own scope, or the parent of a box's)
  const members = new Map();
  for (const item of items.values()) {
    const path = "node" in item ? item.node.scope || "" : item.scope;
    let parts = path ? path.split("/") : [];
    if ("scope" in item) parts = parts.slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const name = parts.slice(0, i).join("/");
      if (!members.has(name)) members.set(name, []);
      members.get(name).push(item);
    }
  }
  return members;
}

function scopeFrames(graph, items, shown) {
  const out = [];
  const nw = THEME.node_w;
  const nh = THEME.node_h;
  for (const [scope, inside] of scopeMembers(items)) {
    const depth = scope.split("/").length - 1;
    const x0 = Math.min(...inside.map((m) => m.x)) - 8 + 3 * depth;
    const y0 = Math.min(...inside.map((m) => m.y)) - 20 + 3 * depth;
    const x1 = Math.max(...inside.map((m) => m.x)) + nw + 8 - 3 * depth;
    const y1 = Math.max(...inside.map((m) => m.y)) + nh + 8 - 3 * depth;
    const hidden = inside.some((m) => shown.has(m.id)) ? "" : " tf-hidden";
    out.push(`<g class="tf-scope${hidden}" data-scope="${esc(scope)}"><rect x="${num(x0)}" ` +
      `y="${num(y0)}" width="${num(x1 - x0)}" height="${num(y1 - y0)}" rx="8"/>` +
      text(x0 + 6, y0 + 13, "▾ " + scope.split("/").pop(), "tf-scope-name") + "</g>");
  }
  return out;
}

function graphEdgePairs(graph, layout) {
  // The drawn edges: one per pair of items that an edge joins, with its geometry inputs.
  const { items, owner } = layout;
  const slots = new Map();
  for (const [, target, slot] of graph.edges) slots.set(target, Math.max(slots.get(target) || 0, slot + 1));
  const pairs = [];
  const seen = new Set();
  for (const [source, target, slot] of graph.edges) {
    const a = owner.get(source);
    const b = owner.get(target);
    if (a === b || seen.has(a + "\u0000" + b)) continue;
    seen.add(a + "\u0000" + b);
    pairs.push({ a, b, ia: items.get(a), ib: items.get(b), slot, slots: slots.get(target) });
  }
  return pairs;
}

function graphEdges(graph, layout, shown, hot, flow) {
  const { owner } = layout;
  const hotPair = hot ? [owner.get(hot[0]), owner.get(hot[1])] : null;
  const nw = THEME.node_w;
  const nh = THEME.node_h;
  const out = [];
  for (const { a, b, ia, ib, slot, slots } of graphEdgePairs(graph, layout)) {
    const intoBox = "scope" in ib;
    const x1 = ia.x + nw;
    const y1 = ia.y + nh / 2;
    const x2 = ib.x;
    const y2 = ib.y + (intoBox ? nh / 2 : nh * (slot + 1) / (slots + 1));
    const span = ib.col - ia.col;
    const alongARow = Math.abs(y2 - y1) < nh;
    let lift = span > 1 && alongARow ? (nh / 2 + 14) * 4 / 3 + 20 * (span - 2) : 0;
    // A cubic's middle rises 3/4 of its control points' lift: stay inside the picture.
    lift = Math.min(lift, (Math.min(y1, y2) - 2) * 4 / 3);
    const bend = Math.max(THEME.col_gap * 0.8, Math.abs(x2 - x1) * 0.25);
    const c1x = x1 + bend;
    const c1y = y1 - lift;
    const c2x = x2 - bend;
    const c2y = y2 - lift;
    const hidden = shown.has(a) && shown.has(b) ? "" : " tf-hidden";
    const hotClass = hotPair && hotPair[0] === a && hotPair[1] === b ? ` tf-hot tf-${flow}` : "";
    out.push(`<g class="tf-edge${hotClass}${hidden}" data-edge="${esc(a)}>${esc(b)}">` +
      `<path class="tf-curve" d="M${num(x1)} ${num(y1)}C${num(c1x)} ${num(c1y)} ${num(c2x)} ` +
      `${num(c2y)} ${num(x2)} ${num(y2)}"/>` + tip(c2x, c2y, x2, y2, "currentColor", 8) + "</g>");
  }
  return out;
}

// ---- Shared by the views -------------------------------------------------------------------
function applyPatch(data, patch) {
  // The kernel's patches (tfgrad_widgets.base.apply_patch), applied to the model's data.
  const path = patch.path.slice(0, -1);
  const last = patch.path[patch.path.length - 1];
  let target = data;
  for (const key of path) target = target[key];
  if (patch.op === "extend") target[last].push(...patch.values);
  else if (patch.op === "set") target[last] = patch.value;
}

function receivePatches({ model }) {
  // anywidget's initialize: once per model, before any view, so every view (also one shown
  // later) reads data with every patch applied; views redraw on the same message.
  model.on("msg:custom", (msg) => {
    for (const patch of msg.patches || []) applyPatch(model.get("data"), patch);
  });
}

function throttle(fn, ms) {
  // The front end's one throttle: at most one call per interval, and the last one always runs.
  let last = -Infinity;
  let timer = null;
  let pending = null;
  const run = () => {
    timer = null;
    last = performance.now();
    const args = pending;
    pending = null;
    fn(...args);
  };
  return (...args) => {
    pending = args;
    const wait = ms - (performance.now() - last);
    if (wait <= 0 && timer === null) run();
    else if (timer === null) timer = setTimeout(run, Math.max(0, wait));
  };
}

function element(tag, attributes = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children) el.append(child);
  return el;
}

function watchWidth(el, callback) {
  // Calls back with the width of el's content box now and whenever it changes (a resized
  // window, the file browser opened or closed); returns the function that stops watching.
  let width = 0;
  const observer = new ResizeObserver((entries) => {
    const w = Math.floor(entries[entries.length - 1].contentRect.width);
    if (w > 0 && w !== width) {
      width = w;
      callback(w);
    }
  });
  observer.observe(el);
  return () => observer.disconnect();
}

function contentWidth(el) {
  const style = getComputedStyle(el);
  return Math.floor(el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
}
