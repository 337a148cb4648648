// The Draw page's canvas: white ink on black, sent to the app the moment a stroke ends.
// A components-v2 component (st.components.v2.component); app_pages/_canvas.py mounts it.
// Why our own: streamlit-drawable-canvas waits a fixed 200 ms after each stroke before it
// sends, which alone was most of the 0.3 s a drawing may take to get its prediction.

const canvases = new WeakMap(); // parentElement -> the state of the canvas mounted there

function paintBackground(ctx, size) {
  ctx.fillStyle = "#000000";
  ctx.fillRect(0, 0, size, size);
}

function mount(root) {
  const canvas = document.createElement("canvas");
  canvas.className = "digit-canvas";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "Drawing canvas: draw one digit with the mouse or a finger");
  root.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  const state = { canvas, ctx, size: 0, strokeWidth: 18, send: () => {}, points: null };

  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (state.size / box.width),
            (event.clientY - box.top) * (state.size / box.height)];
  };
  const dot = ([x, y]) => {
    ctx.beginPath();
    ctx.arc(x, y, state.strokeWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  };
  // Quadratic curves through the midpoints of successive pointer positions: a smooth line
  // however fast the pointer moves, like a pen rather than a polyline.
  const segment = (p0, p1, p2) => {
    ctx.beginPath();
    ctx.moveTo((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2);
    ctx.quadraticCurveTo(p1[0], p1[1], (p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2);
    ctx.stroke();
  };
  const down = (event) => {
    if (event.button !== 0 || !event.isPrimary) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    Object.assign(ctx, { strokeStyle: "#FFFFFF", fillStyle: "#FFFFFF", lineWidth: state.strokeWidth,
                         lineCap: "round", lineJoin: "round" });
    state.points = [at(event)];
    dot(state.points[0]);
  };
  const move = (event) => {
    if (state.points === null || !event.isPrimary) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of (events.length ? events : [event])) {
      const p = state.points;
      p.push(at(e));
      const n = p.length;
      segment(p[Math.max(n - 3, 0)], p[n - 2], p[n - 1]);
    }
  };
  const up = (event) => {
    if (state.points === null || !event.isPrimary) return;
    const p = state.points;
    if (p.length > 1) { // close the gap between the last midpoint and the pointer
      const [a, b] = [p[p.length - 2], p[p.length - 1]];
      ctx.beginPath();
      ctx.moveTo((a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
    }
    state.points = null;
    state.send(canvas.toDataURL("image/png")); // at once: no debounce
  };
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  state.unmount = () => {
    canvas.removeEventListener("pointerdown", down);
    canvas.removeEventListener("pointermove", move);
    canvas.removeEventListener("pointerup", up);
    canvas.removeEventListener("pointercancel", up);
    canvas.remove();
  };
  return state;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".digit-canvas-root");
  let state = canvases.get(parentElement);
  if (!state) {
    state = mount(root);
    canvases.set(parentElement, state);
  }
  state.send = (url) => setStateValue("drawing", url);
  state.strokeWidth = data.strokeWidth;
  if (state.size !== data.size) { // a new size starts a blank canvas
    state.size = data.size;
    state.canvas.width = state.canvas.height = data.size;
    state.canvas.style.width = state.canvas.style.height = `${data.size}px`;
    paintBackground(state.ctx, data.size);
  }
  return () => {
    const mounted = canvases.get(parentElement);
    if (mounted) {
      mounted.unmount();
      canvases.delete(parentElement);
    }
  };
}
