// A box drawn over an image in an <svg> whose viewBox is the image's pixel grid. Editable: drag a corner to
// move it, drag inside the box to move it whole; from the keyboard, select a corner (1-4) and nudge it with
// the arrow keys. Coordinates are (x1, y1, x2, y2) in image pixels.

const NS = "http://www.w3.org/2000/svg";
const CORNERS = ["tl", "tr", "br", "bl"];

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

export class BoxEditor {
  constructor(svg, { editable = true, onChange = () => {} } = {}) {
    this.svg = svg;
    this.editable = editable;
    this.onChange = onChange;
    this.width = 1;
    this.height = 1;
    this.box = null;
    this.reference = null;
    this.selected = null;
    this.drag = null;
    this.refRect = el("rect", { class: "box-reference", visibility: "hidden" }, svg);
    this.rect = el("rect", { class: editable ? "box editable" : "box", visibility: "hidden" }, svg);
    this.handles = {};
    if (editable) {
      for (const c of CORNERS) {
        this.handles[c] = el("circle", { class: `handle handle-${c}`, "data-corner": c, visibility: "hidden" }, svg);
      }
      svg.addEventListener("pointerdown", (e) => this.pointerDown(e));
      svg.addEventListener("pointermove", (e) => this.pointerMove(e));
      svg.addEventListener("pointerup", (e) => this.pointerUp(e));
      svg.addEventListener("pointercancel", (e) => this.pointerUp(e));
      window.addEventListener("resize", () => this.render());
    }
  }

  setImageSize(width, height) {
    this.width = Math.max(1, width);
    this.height = Math.max(1, height);
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
  }

  // The box being edited, and optionally a reference box (the original) drawn dashed when they differ.
  setBox(box, reference = null) {
    this.box = box ? box.slice() : null;
    this.reference = reference ? reference.slice() : null;
    this.selected = null;
    this.render();
  }

  getBox() {
    return this.box ? this.box.map((v) => Math.round(v * 100) / 100) : null;
  }

  // Image pixels per screen pixel: handles and strokes keep their size on screen whatever the zoom.
  scale() {
    const shown = this.svg.getBoundingClientRect().width;
    return shown > 0 ? this.width / shown : 1;
  }

  render() {
    const s = this.scale();
    const show = (node, on) => node.setAttribute("visibility", on ? "visible" : "hidden");
    if (!this.box) {
      show(this.rect, false);
      show(this.refRect, false);
      for (const h of Object.values(this.handles)) show(h, false);
      return;
    }
    const [x1, y1, x2, y2] = this.box;
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, "stroke-width": 2.5 * s }).forEach(([k, v]) =>
      this.rect.setAttribute(k, v),
    );
    show(this.rect, true);
    const ref = this.reference;
    const differs = ref && ref.some((v, i) => Math.abs(v - this.box[i]) > 0.01);
    if (differs) {
      Object.entries({ x: ref[0], y: ref[1], width: ref[2] - ref[0], height: ref[3] - ref[1] }).forEach(([k, v]) =>
        this.refRect.setAttribute(k, v),
      );
      this.refRect.setAttribute("stroke-width", 2 * s);
      this.refRect.setAttribute("stroke-dasharray", `${6 * s} ${4 * s}`);
    }
    show(this.refRect, differs);
    const points = { tl: [x1, y1], tr: [x2, y1], br: [x2, y2], bl: [x1, y2] };
    for (const [c, h] of Object.entries(this.handles)) {
      h.setAttribute("cx", points[c][0]);
      h.setAttribute("cy", points[c][1]);
      h.setAttribute("r", (c === this.selected ? 8 : 6) * s);
      h.setAttribute("stroke-width", 2 * s);
      h.classList.toggle("selected", c === this.selected);
      show(h, true);
    }
  }

  toImage(e) {
    const m = this.svg.getScreenCTM();
    if (!m) return [0, 0];
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(m.inverse());
    return [p.x, p.y];
  }

  clampBox(b) {
    const cx = (v) => Math.min(Math.max(v, 0), this.width);
    const cy = (v) => Math.min(Math.max(v, 0), this.height);
    let [x1, y1, x2, y2] = [cx(b[0]), cy(b[1]), cx(b[2]), cy(b[3])];
    if (x1 > x2) [x1, x2] = [x2, x1];
    if (y1 > y2) [y1, y2] = [y2, y1];
    if (x2 - x1 < 1) x2 = Math.min(this.width, x1 + 1), (x1 = x2 - 1);
    if (y2 - y1 < 1) y2 = Math.min(this.height, y1 + 1), (y1 = y2 - 1);
    return [x1, y1, x2, y2];
  }

  // Move one corner to (x, y); corners that cross swap roles, so the box stays well formed.
  moveCorner(corner, x, y) {
    const b = this.box.slice();
    if (corner === "tl" || corner === "bl") b[0] = x;
    else b[2] = x;
    if (corner === "tl" || corner === "tr") b[1] = y;
    else b[3] = y;
    this.setFromDrag(b);
  }

  setFromDrag(b) {
    this.box = this.clampBox(b);
    this.render();
    this.onChange(this.getBox());
  }

  pointerDown(e) {
    if (!this.box) return;
    const corner = e.target.getAttribute && e.target.getAttribute("data-corner");
    const [x, y] = this.toImage(e);
    if (corner) {
      this.drag = { kind: "corner", corner };
      this.selected = corner;
    } else if (x >= this.box[0] && x <= this.box[2] && y >= this.box[1] && y <= this.box[3]) {
      this.drag = { kind: "move", x, y, start: this.box.slice() };
    } else {
      return;
    }
    this.svg.setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  pointerMove(e) {
    if (!this.drag) return;
    const [x, y] = this.toImage(e);
    if (this.drag.kind === "corner") {
      this.moveCorner(this.drag.corner, x, y);
      return;
    }
    const { start } = this.drag;
    const dx = Math.min(Math.max(x - this.drag.x, -start[0]), this.width - start[2]);
    const dy = Math.min(Math.max(y - this.drag.y, -start[1]), this.height - start[3]);
    this.setFromDrag([start[0] + dx, start[1] + dy, start[2] + dx, start[3] + dy]);
  }

  pointerUp(e) {
    if (!this.drag) return;
    this.drag = null;
    if (this.svg.hasPointerCapture(e.pointerId)) this.svg.releasePointerCapture(e.pointerId);
  }

  // Keyboard: select corner n (1 top-left, 2 top-right, 3 bottom-right, 4 bottom-left), or none.
  selectCorner(n) {
    this.selected = n === null ? null : CORNERS[n - 1];
    this.render();
  }

  nudge(dx, dy) {
    if (!this.box || !this.selected) return false;
    const b = this.box;
    const at = { tl: [b[0], b[1]], tr: [b[2], b[1]], br: [b[2], b[3]], bl: [b[0], b[3]] }[this.selected];
    this.moveCorner(this.selected, at[0] + dx, at[1] + dy);
    return true;
  }
}
