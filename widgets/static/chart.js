// The ChartWidget's view: the figure (kit.js's figureSVG) at the width of its container, the
// controls the figure declares, and the kit's interactions: pick a point of a selectable
// scatter, drag a point. Everything the student changes goes into the model's "view" dict
// (throttled while dragging); the kernel answers with patches, which redraw the figure.

function render({ model, el }) {
  const root = element("div", { class: "tfgrad-widget tfgrad-chart" });
  const controls = element("div", { class: "tf-controls" });
  const picture = element("div", { class: "tf-figure-box" });
  root.append(picture, controls);
  el.append(root);
  let width = 0;
  let frame = null;
  const save = throttle(() => model.save_changes(), THEME.throttle_ms);

  function setView(key, value, now = false) {
    model.set("view", { ...model.get("view"), [key]: value });
    if (now) model.save_changes();
    else save();
  }

  function draw() {
    frame = null;
    if (!width) return;
    picture.innerHTML = figureSVG(model.get("data"), model.get("view"), width);
    for (const control of controls.querySelectorAll("[data-control]")) syncControl(control);
  }

  const redraw = () => {
    // Many changes in one animation frame (a burst of patches) cost one drawing.
    if (frame === null) frame = requestAnimationFrame(draw);
  };

  function buildControls() {
    controls.replaceChildren();
    for (const spec of model.get("data").controls || []) {
      let control;
      if (spec.kind === "toggle") {
        control = element("button", { "data-control": spec.id, class: "tf-toggle", text: spec.label,
          onclick: () => {
            const [off, on] = spec.values;
            setView(spec.key, (model.get("view")[spec.key] ?? off) === on ? off : on, true);
          } });
      } else if (spec.kind === "button") {
        control = element("button", { "data-control": spec.id, class: "tf-button", text: spec.label,
          onclick: () => setView(spec.id, (model.get("view")[spec.id] || 0) + 1, true) });
      } else if (spec.kind === "slider") {
        const input = element("input", { type: "range", min: String(spec.min), max: String(spec.max),
          step: String(spec.step || (spec.max - spec.min) / 100), "aria-label": spec.label });
        const readout = element("span", { class: "tf-readout" });
        input.addEventListener("input", () => {
          readout.textContent = fmt(Number(input.value));
          setView(spec.id, Number(input.value));
        });
        control = element("label", { "data-control": spec.id, class: "tf-group" },
          [spec.label + " ", input, readout]);
      }
      control.spec = spec;
      controls.append(control);
      syncControl(control);
    }
    controls.style.display = controls.children.length ? "" : "none";
  }

  function syncControl(control) {
    const spec = control.spec;
    const view = model.get("view");
    if (spec.kind === "toggle") {
      control.setAttribute("aria-pressed", String((view[spec.key] ?? spec.values[0]) === spec.values[1]));
    } else if (spec.kind === "slider") {
      const value = view[spec.id] ?? spec.value ?? spec.min;
      control.querySelector("input").value = String(value);
      control.querySelector(".tf-readout").textContent = fmt(Number(value));
    }
  }

  // Pick a point: a click on a point of a selectable scatter makes it the current choice.
  picture.addEventListener("click", (event) => {
    const point = event.target.closest(".tf-pick");
    if (!point) return;
    const panel = point.closest("[data-panel]").dataset.panel;
    setView(`${panel}.${point.dataset.layer}`, Number(point.dataset.i), true);
  });

  // Drag a point: pixels back to data through the panel's own scales.
  let dragging = null;
  picture.addEventListener("pointerdown", (event) => {
    const handle = event.target.closest(".tf-handle");
    if (!handle) return;
    const panelId = handle.closest("[data-panel]").dataset.panel;
    const box = panelLayout(model.get("data"), width).get(panelId);
    dragging = { key: `${panelId}.${handle.dataset.layer}`, box,
      geometry: xyGeometry(box.panel, model.get("view"), box.w, box.h) };
    picture.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  picture.addEventListener("pointermove", (event) => {
    if (!dragging) return;
    const svg = picture.querySelector("svg");
    const rect = svg.getBoundingClientRect();
    const { box, geometry: g } = dragging;
    const clamp = (v, a, b) => Math.max(Math.min(a, b), Math.min(Math.max(a, b), v));
    const px = clamp(event.clientX - rect.left - box.x, g.x.r0, g.x.r1);
    const py = clamp(event.clientY - rect.top - box.y, g.y.r0, g.y.r1);
    setView(dragging.key, [invert(g.x, px), invert(g.y, py)]);
    redraw();
  });
  const drop = () => {
    if (dragging) model.save_changes();
    dragging = null;
  };
  picture.addEventListener("pointerup", drop);
  picture.addEventListener("pointercancel", drop);

  model.on("change:view", redraw);
  model.on("change:data", () => {
    buildControls();
    redraw();
  });
  model.on("msg:custom", redraw);
  function setWidth(w) {
    // Draw at the container's width, and tell the kernel, whose snapshot uses it.
    width = w;
    draw();
    if (model.get("width") !== w) {
      model.set("width", w);
      save();
    }
  }
  buildControls();
  setWidth(contentWidth(picture));
  return watchWidth(picture, setWidth);
}

export default { initialize: receivePatches, render };
