// The review tool: one expression at a time, keyboard first. Each decision is posted and committed by the
// server before the next item is shown; the URL's #index brings a reload back to the same item, and changing it
// in the address bar goes to that item. A correction that is not saved is never dropped without asking: leaving
// the item (skip, back, another #index, another filter) first asks whether to save it or discard it.

import { $, fmt, getJSON, loadSession, logout, postJSON, requestId, toast } from "/static/api.js";
import { BoxEditor } from "/static/boxeditor.js";

const state = {
  item: null,
  visited: [], // indices shown before the current one (for Back)
  busy: false,
  editingText: false,
  pending: null, // {key, id}: a failed post is retried with the same request id (never recorded twice)
  account: null, // the logged-in user on a server with accounts: decisions are recorded under that name
  leaving: null, // {go, afterSave, stay}: where the user wanted to go while a correction was unsaved
  dataset: "", // the dataset's folder as the server names it (for the export command)
  agreement: null, // the last agreement figures (for the CSV download)
  wantedIndex: null, // an #N typed while an action ran: followed when it is done
};

// Zoom: 1 shows the whole image fitted to the page; up to MAX_ZOOM times that. A new item whose box would show
// smaller than SMALL_BOX screen pixels opens zoomed in on it, so its corners can be grabbed.
const MAX_ZOOM = 8;
const SMALL_BOX = 40;
const view = { zoom: 1, index: null };

const editor = new BoxEditor($("#overlay"), { onChange: () => updateDirty() });

function annotator() {
  return state.account ? state.account.name : $("#annotator").value.trim();
}

function filters() {
  return { status: $("#filter-status").value, category: $("#filter-category").value };
}

function showMessage(text) {
  const m = $("#message");
  m.textContent = text;
  m.hidden = !text;
}

function boxText(b) {
  return `${fmt(b[0])}, ${fmt(b[1])} → ${fmt(b[2])}, ${fmt(b[3])}  (${fmt(b[2] - b[0])} × ${fmt(b[3] - b[1])})`;
}

function isDirty() {
  const it = state.item;
  if (!it) return false;
  const text = $("#expression").value.trim().replace(/\s+/g, " ");
  const box = editor.getBox();
  return text !== it.description || box.some((v, i) => Math.abs(v - it.box[i]) > 0.01);
}

function updateDirty() {
  $("#dirty").hidden = !isDirty();
  const box = editor.getBox();
  if (box) $("#item-box").textContent = boxText(box);
}

function historyLine(d) {
  const li = document.createElement("li");
  const when = new Date(d.created_at).toLocaleString();
  li.textContent = `${d.action} by ${d.annotator}, ${when}`;
  if (d.action === "edit") li.title = `"${d.description}" [${d.box.map(fmt).join(", ")}]`;
  if (d.undone_at) {
    li.classList.add("undone");
    li.textContent += ` (undone by ${d.undone_by})`;
  }
  li.classList.add(`action-${d.action}`);
  return li;
}

function render(item) {
  const newItem = view.index !== item.index;
  view.index = item.index;
  if (newItem && state.leaving) {
    // another item came (a button clicked meanwhile): the question about the last one is moot
    state.leaving = null;
    $("#unsaved").hidden = true;
    delete document.body.dataset.unsaved;
  }
  state.item = item;
  showMessage("");
  $("#item").hidden = false;
  $("#item-index").textContent = `#${item.index} of ${item.total}`;
  const badge = $("#item-status");
  badge.textContent = item.disputed ? `disputed · latest ${item.status}` : item.status === "unreviewed" ? "not reviewed" : item.status;
  badge.className = `badge ${item.disputed ? "disputed" : item.status}`;
  badge.title = item.disputed ? "Annotators gave different verdicts; the latest decision stands until settled." : "";
  const showVerdicts = item.verdicts.length > 1;
  $("#verdicts-label").hidden = !showVerdicts;
  $("#item-verdicts").hidden = !showVerdicts;
  $("#item-verdicts").textContent = item.verdicts.map((v) => `${v.annotator}: ${v.status}`).join(" · ");
  $("#item-category").textContent = item.category;
  $("#item-split").textContent = item.split || "none";
  $("#item-image").textContent = `${item.image_id} (${item.width} × ${item.height})`;
  const text = $("#expression");
  text.value = item.description;
  text.readOnly = true;
  state.editingText = false;
  const orig = $("#original");
  const changed = item.description !== item.original_description;
  orig.hidden = !changed;
  orig.textContent = changed ? `Original: ${item.original_description}` : "";
  const list = $("#history");
  list.replaceChildren(...item.history.map(historyLine));
  const img = $("#photo");
  const draw = () => {
    const w = item.width || img.naturalWidth;
    const h = item.height || img.naturalHeight;
    editor.setImageSize(w, h);
    editor.setBox(item.box, item.original_box);
    if (newItem) zoomForItem();
    else setZoom(view.zoom, false);
    updateDirty();
  };
  if (img.getAttribute("src") !== item.image_url) {
    img.onload = draw;
    img.src = item.image_url;
  } else {
    draw();
  }
  history.replaceState(null, "", `#${item.index}`);
  document.body.dataset.index = String(item.index);
  document.body.dataset.status = item.status;
  document.body.dataset.disputed = item.disputed ? "1" : "";
}

async function show(index, remember = true) {
  const item = await getJSON(`/api/review/item/${index}`);
  if (remember && state.item && state.item.index !== index) state.visited.push(state.item.index);
  render(item);
}

async function refreshProgress() {
  const f = filters();
  const p = await getJSON(`/api/review/progress?category=${encodeURIComponent(f.category)}`);
  $("#progress-done").textContent = `${p.done} / ${p.total} done`;
  $("#progress-accepted").textContent = `${p.accepted} accepted`;
  $("#progress-rejected").textContent = `${p.rejected} rejected`;
  $("#progress-edited").textContent = `${p.edited} edited`;
  $("#progress-fill").style.width = p.total ? `${(100 * p.done) / p.total}%` : "0";
  const disputed = $("#progress-disputed");
  disputed.hidden = !p.disputed;
  disputed.textContent = `${p.disputed} disputed`;
  showAgreement(p);
  const sel = $("#filter-category");
  if (sel.options.length === 1) {
    for (const c of p.categories) sel.add(new Option(c, c));
  }
  return p;
}

function percent(x) {
  return `${(100 * x).toFixed(0)}%`;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

// The agreement figures (admins, or everyone on a server without accounts): a one-line summary in the toolbar
// that opens a panel saying what the numbers count, per annotator and per pair, with the downloads.
function showAgreement(p) {
  const a = p.agreement;
  const button = $("#progress-agreement");
  state.agreement = a ? { ...a, decisions: p.annotators } : null;
  button.hidden = !(a && a.pairs);
  if (!a || !a.pairs) {
    $("#agreement-panel").hidden = true;
    return;
  }
  const iou = a.mean_edit_iou === null ? "" : `, edits IoU ${a.mean_edit_iou.toFixed(2)}`;
  button.textContent = `agreement ${percent(a.same_verdict)} over ${a.expressions} shared${iou}`;
  const edits =
    a.mean_edit_iou === null
      ? "No pair has both annotators editing the box yet."
      : `Where both edited the box (${a.edited_pairs} pairs), their two boxes overlap with a mean IoU of ` +
        `${a.mean_edit_iou.toFixed(2)}.`;
  $("#agreement-explained").textContent =
    `${a.expressions} expressions were judged by two or more annotators. Each annotator's verdict is their own ` +
    "latest accept, edit or reject there (skips and undone decisions do not count). Over the " +
    `${a.pairs} pairs of annotators on those expressions, ${percent(a.same_verdict)} gave the same verdict. ${edits}`;
  const decisions = p.annotators || {};
  const names = [...new Set([...Object.keys(decisions), ...a.by_annotator.map((x) => x.annotator)])].sort();
  const byName = Object.fromEntries(a.by_annotator.map((x) => [x.annotator, x]));
  $("#agreement-annotators tbody").replaceChildren(
    ...names.map((n) => {
      const x = byName[n];
      return row([n, String(decisions[n] || 0), String(x ? x.expressions : 0), x ? percent(x.same_verdict) : "–"]);
    }),
  );
  $("#agreement-pairs tbody").replaceChildren(
    ...a.by_pair.map((x) =>
      row([
        x.annotators.join(" & "),
        String(x.expressions),
        percent(x.same_verdict),
        x.mean_edit_iou === null ? "–" : x.mean_edit_iou.toFixed(2),
      ]),
    ),
  );
}

function csvCell(v) {
  const text = String(v);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// The agreement as CSV: one line per annotator, one per pair, and the overall line.
function agreementCSV() {
  const a = state.agreement;
  const lines = [["scope", "who", "decisions", "shared_expressions", "pairs", "same_verdict", "mean_edit_iou"]];
  for (const x of a.by_annotator) {
    lines.push(["annotator", x.annotator, a.decisions[x.annotator] || 0, x.expressions, x.pairs, x.same_verdict, ""]);
  }
  for (const x of a.by_pair) {
    const iou = x.mean_edit_iou === null ? "" : x.mean_edit_iou;
    lines.push(["pair", x.annotators.join(" & "), "", x.expressions, 1, x.same_verdict, iou]);
  }
  lines.push(["all", "", "", a.expressions, a.pairs, a.same_verdict, a.mean_edit_iou === null ? "" : a.mean_edit_iou]);
  return `${lines.map((l) => l.map(csvCell).join(",")).join("\n")}\n`;
}

function toggleAgreement() {
  const panel = $("#agreement-panel");
  panel.hidden = !panel.hidden;
  $("#progress-agreement").setAttribute("aria-expanded", String(!panel.hidden));
}

async function goNext(after) {
  const f = filters();
  const q = new URLSearchParams({ after: String(after), status: f.status, category: f.category });
  const { index } = await getJSON(`/api/review/next?${q}`);
  if (index === null) {
    if (state.item) state.visited.push(state.item.index);
    state.item = null;
    view.index = null;
    $("#item").hidden = true;
    editor.setBox(null);
    $("#photo").removeAttribute("src");
    document.body.dataset.index = "";
    showMessage(f.status === "unreviewed" ? "Everything here is reviewed. 🎉" : "No item matches these filters.");
    return;
  }
  await show(index);
}

function needAnnotator() {
  if (annotator()) return false;
  toast("Type your name (top right) first: every decision records who made it.", "error");
  $("#annotator").focus();
  return true;
}

// One user action at a time: keys pressed while a decision is being saved are ignored.
async function exclusive(fn) {
  if (state.busy) return;
  state.busy = true;
  try {
    await fn();
  } catch (err) {
    toast(err.message, "error");
  } finally {
    state.busy = false;
  }
  // an address typed while this action ran is followed now (the action's own item may have rewritten the hash)
  if (state.wantedIndex !== null) {
    const wanted = state.wantedIndex;
    state.wantedIndex = null;
    goToIndex(wanted);
  }
}

// Post a decision about the current item (an accept of a modified item is an edit); true once it is committed.
async function record(action) {
  const item = state.item;
  if (!item || needAnnotator()) return false;
  const body = { index: item.index, action };
  if (!state.account) body.annotator = annotator();
  if (action === "accept" && isDirty()) body.action = "edit";
  if (body.action === "edit") {
    body.description = $("#expression").value;
    body.box = editor.getBox();
  }
  const key = JSON.stringify(body);
  if (!state.pending || state.pending.key !== key) state.pending = { key, id: requestId() };
  body.request_id = state.pending.id;
  try {
    await postJSON("/api/review/decision", body);
  } catch (err) {
    toast(`Not saved: ${err.message}`, "error");
    return false;
  }
  state.pending = null;
  await refreshProgress();
  return true;
}

// Accept, reject or edit, then go on to the next item the filters select.
function decide(action) {
  return exclusive(async () => {
    const item = state.item;
    if (await record(action)) await goNext(item.index);
  });
}

// Leave the current item through `go`; with an unsaved correction, ask first (see settleLeaving): `afterSave`
// is where to go once the correction is saved, `stay` puts back whatever started the move.
function leave(go, afterSave = go, stay = () => {}) {
  if (!isDirty()) return go();
  state.leaving = { go, afterSave, stay };
  $("#unsaved").hidden = false;
  document.body.dataset.unsaved = "1";
  $("#btn-unsaved-save").focus();
  return undefined;
}

function settleLeaving(choice) {
  const leaving = state.leaving;
  if (!leaving) return undefined;
  state.leaving = null;
  $("#unsaved").hidden = true;
  delete document.body.dataset.unsaved;
  if (choice === "stay") {
    leaving.stay();
    return undefined;
  }
  return exclusive(async () => {
    if (choice === "save") {
      if (await record("edit")) await leaving.afterSave();
      return;
    }
    resetEdits();
    await leaving.go();
  });
}

function skip() {
  return exclusive(() => {
    const item = state.item;
    return leave(
      async () => {
        if (await record("skip")) await goNext(item.index);
      },
      () => goNext(item.index),
    );
  });
}

async function undoNow() {
  if (needAnnotator()) return;
  let res;
  try {
    res = await postJSON("/api/review/undo", state.account ? {} : { annotator: annotator() });
  } catch (err) {
    toast(`Undo failed: ${err.message}`, "error");
    return;
  }
  if (!res.undone) {
    toast("Nothing of yours to undo.");
    return;
  }
  toast(`Undone: ${res.undone.action} of #${res.undone.index}`);
  if (state.item && state.item.index !== res.item.index) state.visited.push(state.item.index);
  render(res.item);
  await refreshProgress();
}

// Undo: an unsaved correction is the last thing done, so it goes first; then the last decision saved.
function undo() {
  if (isDirty()) {
    resetEdits();
    toast("The unsaved correction is discarded.");
    return undefined;
  }
  return exclusive(undoNow);
}

async function backNow() {
  if (state.visited.length) {
    await show(state.visited.pop(), false);
    return;
  }
  const after = state.item ? state.item.index : -1;
  const { index } = await getJSON(`/api/review/next?after=${after}&direction=prev&status=all&wrap=false`);
  if (index === null) toast("This is the first item.");
  else await show(index, false);
}

function back() {
  return exclusive(() => leave(backNow));
}

// The address bar's #N changed (typed, or the browser's back button): go there, asking first if need be; while
// another action runs, once it is done.
function onHashChange() {
  const wanted = Number.parseInt(location.hash.slice(1), 10);
  if (!Number.isInteger(wanted)) return;
  if (state.busy) state.wantedIndex = wanted;
  else goToIndex(wanted);
}

function goToIndex(wanted) {
  const here = state.item ? state.item.index : null;
  const restore = () => history.replaceState(null, "", here === null ? location.pathname : `#${here}`);
  if (wanted === here) {
    restore();
    return;
  }
  const total = state.item ? state.item.total : Number.POSITIVE_INFINITY;
  if (wanted < 0 || wanted >= total) {
    toast(`There is no item #${wanted}: the items are #0 to #${total - 1}.`, "error");
    restore();
    return;
  }
  exclusive(() => leave(() => show(wanted), () => show(wanted), restore));
}

function startTextEdit() {
  const text = $("#expression");
  text.readOnly = false;
  state.editingText = true;
  text.focus();
  text.setSelectionRange(text.value.length, text.value.length);
}

function resetEdits() {
  if (!state.item) return;
  render(state.item);
}

// -- zoom ---------------------------------------------------------------------------------------------------

function imageSize() {
  const it = state.item;
  const img = $("#photo");
  return [it && it.width ? it.width : img.naturalWidth || 1, it && it.height ? it.height : img.naturalHeight || 1];
}

// The viewport's size (its width, and the height it may grow to) and its padding, in screen pixels.
function viewportBox() {
  const vp = $("#viewport");
  const style = getComputedStyle(vp);
  return {
    width: vp.clientWidth,
    height: Number.parseFloat(style.maxHeight) || window.innerHeight,
    padX: Number.parseFloat(style.paddingLeft) + Number.parseFloat(style.paddingRight),
    padY: Number.parseFloat(style.paddingTop) + Number.parseFloat(style.paddingBottom),
  };
}

// Screen pixels per image pixel at zoom 1: the whole image fits the viewport (never enlarged).
function fitScale() {
  const vp = viewportBox();
  const [w, h] = imageSize();
  return Math.min(1, (vp.width - vp.padX) / w, (vp.height - vp.padY) / h);
}

// The zoom at which the box fills about 40 % of the viewport's shorter side.
function boxZoom() {
  const box = editor.getBox();
  if (!box) return 1;
  const vp = viewportBox();
  const side = Math.max(box[2] - box[0], box[3] - box[1], 1) * fitScale();
  const target = (0.4 * Math.min(vp.width, vp.height)) / side;
  return Math.min(MAX_ZOOM, Math.max(1, Math.round(target * 2) / 2));
}

function setZoom(zoom, center = true) {
  view.zoom = Math.min(MAX_ZOOM, Math.max(1, zoom));
  const [w, h] = imageSize();
  const s = fitScale() * view.zoom;
  const img = $("#photo");
  img.style.width = `${w * s}px`;
  img.style.height = `${h * s}px`;
  editor.render();
  $("#zoom-level").textContent = view.zoom === 1 ? "fit" : `×${view.zoom.toFixed(1)}`;
  $("#zoom-box-label").textContent = view.zoom > 1 ? "whole image" : "zoom to box";
  document.body.dataset.zoom = String(view.zoom);
  const box = editor.getBox();
  if (center && box) {
    const vp = $("#viewport");
    const stage = $("#stage");
    vp.scrollLeft = stage.offsetLeft + ((box[0] + box[2]) / 2) * s - vp.clientWidth / 2;
    vp.scrollTop = stage.offsetTop + ((box[1] + box[3]) / 2) * s - vp.clientHeight / 2;
  }
}

function toggleBoxZoom() {
  setZoom(view.zoom > 1 ? 1 : Math.max(2, boxZoom()));
  $("#zoom-note").hidden = true;
}

// A new item: zoomed in when its box would be too small to handle at the fitted size.
function zoomForItem() {
  const box = editor.getBox();
  const s = fitScale();
  const small = box && Math.min(box[2] - box[0], box[3] - box[1]) * s < SMALL_BOX;
  setZoom(small ? boxZoom() : 1);
  $("#zoom-note").hidden = !(small && view.zoom > 1);
}

function onTextKey(e) {
  if (!state.editingText) return;
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("#expression").blur();
    state.editingText = false;
    $("#expression").readOnly = true;
    updateDirty();
    if (isDirty()) decide("edit");
  } else if (e.key === "Escape") {
    e.preventDefault();
    $("#expression").blur();
    resetEdits();
  }
}

// While the unsaved-correction question is open, only its answers count: Enter saves, D discards, Esc stays.
function onLeavingKey(e) {
  const choice = { Enter: "save", d: "discard", D: "discard", Escape: "stay" }[e.key];
  e.preventDefault();
  if (choice) settleLeaving(choice);
}

function onKey(e) {
  const target = e.target;
  if (state.leaving) {
    onLeavingKey(e);
    return;
  }
  if (target.id === "annotator") {
    if (e.key === "Enter" || e.key === "Escape") target.blur();
    return;
  }
  if (target.tagName === "TEXTAREA" && state.editingText) return;
  if (target.tagName === "SELECT" || (target.tagName === "INPUT" && target.type === "text")) return;
  if (e.altKey || e.metaKey) return;
  if (e.ctrlKey) {
    if (e.key === "z") {
      e.preventDefault();
      undo();
    }
    return;
  }
  const step = e.shiftKey ? 10 : 1;
  const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (arrows[e.key] && editor.selected) {
    e.preventDefault();
    editor.nudge(...arrows[e.key]);
    return;
  }
  const actions = {
    a: () => decide("accept"),
    Enter: () => decide("accept"),
    r: () => decide("reject"),
    e: () => startTextEdit(),
    s: () => skip(),
    ArrowRight: () => skip(),
    u: () => undo(),
    b: () => back(),
    ArrowLeft: () => back(),
    // first the picked corner, then the correction itself
    Escape: () => (editor.selected ? editor.selectCorner(null) : isDirty() ? resetEdits() : undefined),
    z: () => toggleBoxZoom(),
    "+": () => setZoom(view.zoom * 1.5),
    "=": () => setZoom(view.zoom * 1.5),
    "-": () => setZoom(view.zoom / 1.5),
    1: () => editor.selectCorner(1),
    2: () => editor.selectCorner(2),
    3: () => editor.selectCorner(3),
    4: () => editor.selectCorner(4),
  };
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const run = actions[key];
  if (!state.item && !["b", "ArrowLeft", "u"].includes(key)) return; // nothing shown: only Back and Undo
  if (run) {
    e.preventDefault();
    if (target.tagName === "BUTTON") target.blur();
    run();
  }
}

async function start() {
  const me = await loadSession();
  if (me.login_required && !me.name) return; // on the way to the login page
  if (me.name) {
    state.account = me;
    $("#annotator-label").hidden = true;
    $("#account").hidden = false;
    $("#account-name").textContent = `${me.name} (${me.role})`;
    $("#btn-logout").addEventListener("click", () => logout().catch((err) => toast(err.message, "error")));
  }
  const status = await getJSON("/api/status");
  state.dataset = status.dataset || "";
  if (!status.dataset) {
    showMessage("No dataset is loaded: start the server with `rsvg serve --dataset ROOT`.");
    return;
  }
  $("#annotator").value = localStorage.getItem("rsvg.annotator") || "";
  $("#annotator").addEventListener("change", () => localStorage.setItem("rsvg.annotator", annotator()));
  for (const id of ["#filter-status", "#filter-category"]) {
    const sel = $(id);
    let previous = sel.value;
    sel.addEventListener("change", () => {
      sel.blur();
      const go = async () => {
        previous = sel.value;
        await refreshProgress();
        await goNext(state.item ? state.item.index - 1 : -1);
      };
      exclusive(() =>
        leave(go, go, () => {
          sel.value = previous;
        }),
      );
    });
  }
  $("#progress-disputed").addEventListener("click", () => {
    const sel = $("#filter-status");
    if (sel.value === "disputed") return;
    sel.value = "disputed";
    sel.dispatchEvent(new Event("change"));
  });
  $("#progress-agreement").addEventListener("click", toggleAgreement);
  $("#download-agreement").addEventListener("click", () => {
    if (!state.agreement) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([agreementCSV()], { type: "text/csv" }));
    link.download = "review-agreement.csv";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  $("#export-command").textContent = `rsvg review-export ${state.dataset} ${state.dataset.replace(/\/+$/, "")}_reviewed`;
  window.addEventListener("hashchange", onHashChange);
  window.addEventListener("beforeunload", (e) => {
    if (!isDirty()) return;
    e.preventDefault();
    e.returnValue = "";
  });
  window.addEventListener("resize", () => state.item && setZoom(view.zoom, false));
  $("#viewport").addEventListener(
    "wheel",
    (e) => {
      if (!e.ctrlKey || !state.item) return;
      e.preventDefault();
      setZoom(e.deltaY < 0 ? view.zoom * 1.25 : view.zoom / 1.25);
    },
    { passive: false },
  );
  $("#expression").addEventListener("keydown", onTextKey);
  $("#expression").addEventListener("input", updateDirty);
  document.addEventListener("keydown", onKey);
  const clicks = {
    "#btn-accept": () => decide("accept"),
    "#btn-reject": () => decide("reject"),
    "#btn-edit": () => startTextEdit(),
    "#btn-skip": () => decide("skip"),
    "#btn-undo": () => undo(),
    "#btn-back": () => back(),
    "#btn-unsaved-save": () => settleLeaving("save"),
    "#btn-unsaved-discard": () => settleLeaving("discard"),
    "#btn-unsaved-stay": () => settleLeaving("stay"),
    "#btn-zoom-in": () => setZoom(view.zoom * 1.5),
    "#btn-zoom-out": () => setZoom(view.zoom / 1.5),
    "#btn-zoom-box": () => toggleBoxZoom(),
  };
  for (const [sel, fn] of Object.entries(clicks)) {
    $(sel).addEventListener("click", (e) => {
      e.currentTarget.blur(); // the keys go back to the page
      fn();
    });
  }
  await refreshProgress();
  const fromHash = Number.parseInt(location.hash.slice(1), 10);
  if (Number.isInteger(fromHash) && fromHash >= 0 && fromHash < status.objects) await show(fromHash, false);
  else await goNext(-1);
  if (!annotator() && !state.account) $("#annotator").focus();
  document.body.dataset.ready = "1";
}

start().catch((err) => showMessage(`Cannot start: ${err.message}`));
