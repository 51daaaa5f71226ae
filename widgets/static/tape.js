// The TapeWidget's view: the tape graph (kit.js's graphLayout and graphSVG), a caption, and the
// controls. The graph and every frame arrive once (model "data"); a step changes only classes
// and a few texts in the drawing. Stepping, playing, zooming and panning run here; the kernel
// hears of steps, modes and opened scopes through the model (throttled while the slider moves).

function foldFrames(frames, step) {
  // Frames arrive as differences: add them up to the state of one step.
  const visible = [];
  const values = {};
  for (let i = 0; i <= step && i < frames.length; i++) {
    visible.push(...frames[i].show);
    Object.assign(values, frames[i].values);
  }
  const f = frames[step];
  return { visible, values, active: f ? f.active : null, edge: f ? f.edge : null,
    flow: f && f.phase === "forward" ? "fwd" : "rev", caption: f ? f.caption : "" };
}

function render({ model, el }) {
  const root = element("div", { class: "tfgrad-widget tfgrad-tape", tabindex: "0" });
  const caption = element("div", { class: "tf-caption-line" });
  const viewport = element("div", { class: "tf-viewport" });
  const button = (label, css, title, onclick) =>
    element("button", { class: css, title, "aria-label": title, text: label, onclick });
  const back = button("|◀", "tf-step-back", "step back (←)", () => go(model.get("step") - 1));
  const play = button("▶", "tf-play", "play / pause (space)", () => (timer ? stop() : start()));
  const ahead = button("▶|", "tf-step-forward", "step forward (→)", () => go(model.get("step") + 1));
  const slider = element("input", { class: "tf-step-slider", type: "range", min: "1", value: "1",
    "aria-label": "step" });
  const readout = element("span", { class: "tf-readout" });
  const modes = Object.keys(model.get("data").modes || {});
  const modeButtons = modes.map((m) =>
    element("button", { "data-mode": m, title: (model.get("data").modes || {})[m], text: m,
      onclick: () => setMode(m) }));
  const speed = element("select", { class: "tf-speed", title: "time per step", "aria-label": "speed" },
    [["1400", "slow"], ["700", "normal"], ["300", "fast"], ["100", "fastest"]]
      .map(([ms, label]) => element("option", { value: ms, text: label })));
  speed.value = "700";
  const zoomOut = button("−", "tf-zoom-out", "zoom out", () => setZoom(zoom / 1.25));
  const zoomFit = button("fit", "tf-zoom-fit", "zoom to fit the column", () => setZoom(null));
  const zoomIn = button("+", "tf-zoom-in", "zoom in", () => setZoom(zoom * 1.25));
  const scopeButtons = element("span", { class: "tf-group tf-scopes" }, [
    button("open all", "tf-open-all", "open every name scope", () => setCollapsed([])),
    button("close all", "tf-close-all", "close every name scope into a box",
      () => setCollapsed((model.get("data").scopes || []).filter((s) => !s.includes("/")))),
  ]);
  const controls = element("div", { class: "tf-controls" }, [
    element("span", { class: "tf-group" }, [back, play, ahead, slider, readout]),
    element("span", { class: "tf-group tf-mode" }, modeButtons),
    element("span", { class: "tf-group" }, [speed]),
    element("span", { class: "tf-group" }, [zoomOut, zoomFit, zoomIn]),
    scopeButtons,
  ]);
  root.append(caption, viewport, controls);
  el.append(root);

  let layout = null;
  let svg = null;
  let parts = null; // item id -> elements, edge key -> element, scope -> element
  let zoom = 1;
  let fitted = true; // zoom follows the column's width until the student zooms by hand
  let width = 0;
  let timer = null;
  const save = throttle(() => model.save_changes(), THEME.throttle_ms);

  const frames = () => model.get("data").frames[model.get("mode")] || [];

  function relayout() {
    const data = model.get("data");
    layout = graphLayout(data.graph, model.get("collapsed"));
    viewport.innerHTML = graphSVG(data.graph, layout, foldFrames(frames(), model.get("step")));
    svg = viewport.querySelector("svg");
    parts = { items: new Map(), edges: new Map(), scopes: new Map(), members: scopeMembers(layout.items) };
    parts.adj = new Map(); // node id -> its adjoint (or tangent) text
    parts.hover = new Map(); // node id -> its <title>, which also holds the derivative
    for (const g of svg.querySelectorAll(".tf-node")) {
      parts.items.set(g.dataset.id ?? "scope:" + g.dataset.scope, g);
      if (g.dataset.id !== undefined) {
        parts.adj.set(g.dataset.id, g.querySelector(".tf-adj"));
        parts.hover.set(g.dataset.id, g.querySelector("title"));
      }
    }
    for (const g of svg.querySelectorAll(".tf-edge")) parts.edges.set(g.dataset.edge, g);
    for (const g of svg.querySelectorAll(".tf-scope")) parts.scopes.set(g.dataset.scope, g);
    scopeButtons.style.display = (data.scopes || []).length ? "" : "none";
    setZoom(fitted ? null : zoom);
    update();
  }

  function update() {
    // One step: flip classes, set the texts that changed. Mirrors graphSVG's markup.
    const all = frames();
    const step = Math.max(0, Math.min(model.get("step"), all.length - 1));
    const state = foldFrames(all, step);
    const { items, owner } = layout;
    const shown = new Set(state.visible.filter((n) => owner.has(n)).map((n) => owner.get(n)));
    const active = owner.get(state.active || "");
    const symbol = state.flow === "fwd" ? "ṫ" : "ḡ";
    for (const [id, g] of parts.items) {
      g.classList.toggle("tf-hidden", !shown.has(id));
      g.classList.toggle("tf-active", id === active);
      const item = items.get(id);
      if ("node" in item) {
        const adj = parts.adj.get(id);
        const value = state.values[item.node.id] || "";
        const words = value ? clip(`${symbol} = ${value}`, THEME.node_w - 14, THEME.font) : "";
        if (adj.textContent !== words) adj.textContent = words;
        const hover = parts.hover.get(id);
        const full = (item.node.title || "") + (value ? `; ${symbol} = ${value}` : "");
        if (hover.textContent !== full) hover.textContent = full;
        const css = `tf-adj tf-${state.flow}`;
        if (adj.getAttribute("class") !== css) adj.setAttribute("class", css);
      }
    }
    const hot = state.edge ? owner.get(state.edge[0]) + ">" + owner.get(state.edge[1]) : null;
    for (const [key, g] of parts.edges) {
      const [a, b] = key.split(">");
      g.classList.toggle("tf-hidden", !(shown.has(a) && shown.has(b)));
      const isHot = key === hot;
      g.classList.toggle("tf-hot", isHot);
      g.classList.toggle("tf-rev", isHot && state.flow === "rev");
      g.classList.toggle("tf-fwd", isHot && state.flow === "fwd");
    }
    for (const [scope, g] of parts.scopes) {
      g.classList.toggle("tf-hidden", !parts.members.get(scope).some((m) => shown.has(m.id)));
    }
    const modes = model.get("data").modes || {};
    const where = all.length ? `step ${step + 1} of ${all.length}` : "no steps";
    caption.replaceChildren(element("b", { text: modes[model.get("mode")] || model.get("mode") }),
      ` · ${where}` + (state.caption ? ` · ${state.caption}` : ""));
    slider.max = String(Math.max(1, all.length));
    slider.value = String(step + 1);
    readout.textContent = `${step + 1} / ${all.length}`;
    for (const b of modeButtons) b.setAttribute("aria-pressed", String(b.dataset.mode === model.get("mode")));
    if (active) keepInView(items.get(active));
  }

  function keepInView(item) {
    const x0 = item.x * zoom;
    const y0 = item.y * zoom;
    const x1 = (item.x + THEME.node_w) * zoom;
    const y1 = (item.y + THEME.node_h) * zoom;
    const v = viewport;
    if (x0 < v.scrollLeft || x1 > v.scrollLeft + v.clientWidth) {
      v.scrollLeft = Math.max(0, (x0 + x1) / 2 - v.clientWidth / 2);
    }
    if (y0 < v.scrollTop || y1 > v.scrollTop + v.clientHeight) {
      v.scrollTop = Math.max(0, (y0 + y1) / 2 - v.clientHeight / 2);
    }
  }

  function setZoom(value) {
    // null: fit the column's width, never below THEME.min_zoom (the readable minimum) nor
    // above 1; the student may zoom in further, but not out below the minimum.
    fitted = value === null;
    const fitTo = (room) => Math.max(THEME.min_zoom, Math.min(1, room / layout.width));
    zoom = width ? fitTo(width - 2) : 1; // 2: the viewport's border
    if (width && layout.height * zoom > THEME.max_view_height) zoom = fitTo(width - 2 - 16); // a scroll bar
    if (!fitted) zoom = Math.max(THEME.min_zoom, Math.min(2, value));
    svg.setAttribute("width", num(layout.width * zoom));
    svg.setAttribute("height", num(layout.height * zoom));
    viewport.style.maxHeight = `${THEME.max_view_height}px`;
    zoomFit.setAttribute("aria-pressed", String(fitted));
  }

  function go(step) {
    const n = frames().length;
    const next = Math.max(0, Math.min(step, n - 1));
    if (next === model.get("step")) return;
    model.set("step", next);
    save();
  }

  function setMode(mode) {
    if (mode === model.get("mode")) return;
    stop();
    model.set("mode", mode);
    model.set("step", 0);
    model.save_changes();
  }

  function setCollapsed(scopes) {
    model.set("collapsed", [...new Set(scopes)].sort());
    model.save_changes();
  }

  function start() {
    if (model.get("step") >= frames().length - 1) go(0);
    play.textContent = "❚❚";
    const tick = () => {
      if (model.get("step") >= frames().length - 1) return stop();
      go(model.get("step") + 1);
      timer = setTimeout(tick, Number(speed.value));
    };
    timer = setTimeout(tick, Number(speed.value));
  }

  function stop() {
    clearTimeout(timer);
    timer = null;
    play.textContent = "▶";
  }

  slider.addEventListener("input", () => go(Number(slider.value) - 1));
  root.addEventListener("keydown", (event) => {
    if (event.target !== root) return;
    if (event.key === "ArrowRight") go(model.get("step") + 1);
    else if (event.key === "ArrowLeft") go(model.get("step") - 1);
    else if (event.key === " ") timer ? stop() : start();
    else return;
    event.preventDefault();
  });
  // A click on a box opens its scope; a click on an open scope's name closes it.
  viewport.addEventListener("click", (event) => {
    if (panned) return;
    const box = event.target.closest(".tf-box, .tf-scope-name");
    if (!box) return;
    const scope = box.closest("[data-scope]").dataset.scope;
    const closed = model.get("collapsed");
    setCollapsed(closed.includes(scope) ? closed.filter((s) => s !== scope) : [...closed, scope]);
  });
  // Drag to pan (the viewport scrolls; scroll bars and the wheel work too).
  let drag = null;
  let panned = false;
  viewport.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY, left: viewport.scrollLeft, top: viewport.scrollTop };
    panned = false;
  });
  viewport.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!panned && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!panned) viewport.setPointerCapture(event.pointerId);
    panned = true;
    viewport.classList.add("tf-panning");
    viewport.scrollLeft = drag.left - dx;
    viewport.scrollTop = drag.top - dy;
  });
  const endDrag = () => {
    drag = null;
    viewport.classList.remove("tf-panning");
    setTimeout(() => { panned = false; }, 0);
  };
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointercancel", endDrag);

  model.on("change:step", update);
  model.on("change:mode", update);
  model.on("change:collapsed", relayout);
  model.on("change:data", relayout);
  model.on("msg:custom", () => requestAnimationFrame(relayout));
  function setWidth(w) {
    // Fit the column's width, and tell the kernel.
    width = w;
    if (layout) setZoom(fitted ? null : zoom);
    if (model.get("width") !== w) {
      model.set("width", w);
      save();
    }
  }
  width = contentWidth(root);
  relayout();
  setWidth(width);
  const unwatch = watchWidth(root, setWidth);
  return () => {
    stop();
    unwatch();
  };
}

export default { initialize: receivePatches, render };
