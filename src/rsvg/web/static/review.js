// The review tool: one expression at a time, keyboard first. Each decision is posted and committed by the
// server before the next item is shown; the URL's #index brings a reload back to the same item.

import { $, fmt, getJSON, loadSession, logout, postJSON, requestId, toast } from "/static/api.js";
import { BoxEditor } from "/static/boxeditor.js";

const state = {
  item: null,
  visited: [], // indices shown before the current one (for Back)
  busy: false,
  editingText: false,
  pending: null, // {key, id}: a failed post is retried with the same request id (never recorded twice)
  account: null, // the logged-in user on a server with accounts: decisions are recorded under that name
};

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
  state.item = item;
  showMessage("");
  $("#item").hidden = false;
  $("#item-index").textContent = `#${item.index} of ${item.total}`;
  const badge = $("#item-status");
  badge.textContent = item.status === "unreviewed" ? "not reviewed" : item.status;
  badge.className = `badge ${item.status}`;
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
  const agree = $("#progress-agreement");
  const a = p.agreement;
  agree.hidden = !(a && a.pairs);
  if (a && a.pairs) {
    const iou = a.mean_edit_iou === null ? "" : `, edits IoU ${a.mean_edit_iou.toFixed(2)}`;
    agree.textContent = `agreement ${(100 * a.same_verdict).toFixed(0)}% over ${a.expressions} shared${iou}`;
  }
  const sel = $("#filter-category");
  if (sel.options.length === 1) {
    for (const c of p.categories) sel.add(new Option(c, c));
  }
  return p;
}

async function goNext(after) {
  const f = filters();
  const q = new URLSearchParams({ after: String(after), status: f.status, category: f.category });
  const { index } = await getJSON(`/api/review/next?${q}`);
  if (index === null) {
    if (state.item) state.visited.push(state.item.index);
    state.item = null;
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

async function decide(action) {
  const item = state.item;
  if (!item || state.busy || needAnnotator()) return;
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
  state.busy = true;
  try {
    await postJSON("/api/review/decision", body);
    state.pending = null;
    await refreshProgress();
    await goNext(item.index);
  } catch (err) {
    toast(`Not saved: ${err.message}`, "error");
  } finally {
    state.busy = false;
  }
}

async function undo() {
  if (state.busy || needAnnotator()) return;
  state.busy = true;
  try {
    const res = await postJSON("/api/review/undo", state.account ? {} : { annotator: annotator() });
    if (!res.undone) {
      toast("Nothing of yours to undo.");
      return;
    }
    toast(`Undone: ${res.undone.action} of #${res.undone.index}`);
    if (state.item && state.item.index !== res.item.index) state.visited.push(state.item.index);
    render(res.item);
    await refreshProgress();
  } catch (err) {
    toast(`Undo failed: ${err.message}`, "error");
  } finally {
    state.busy = false;
  }
}

async function back() {
  if (state.busy) return;
  try {
    if (state.visited.length) {
      await show(state.visited.pop(), false);
      return;
    }
    const after = state.item ? state.item.index : -1;
    const { index } = await getJSON(`/api/review/next?after=${after}&direction=prev&status=all&wrap=false`);
    if (index === null) toast("This is the first item.");
    else await show(index, false);
  } catch (err) {
    toast(err.message, "error");
  }
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

function onKey(e) {
  const target = e.target;
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
    s: () => decide("skip"),
    ArrowRight: () => decide("skip"),
    u: () => undo(),
    b: () => back(),
    ArrowLeft: () => back(),
    Escape: () => (editor.selected ? editor.selectCorner(null) : resetEdits()),
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
  if (!status.dataset) {
    showMessage("No dataset is loaded: start the server with `rsvg serve --dataset ROOT`.");
    return;
  }
  $("#annotator").value = localStorage.getItem("rsvg.annotator") || "";
  $("#annotator").addEventListener("change", () => localStorage.setItem("rsvg.annotator", annotator()));
  for (const id of ["#filter-status", "#filter-category"]) {
    $(id).addEventListener("change", async () => {
      $(id).blur();
      await refreshProgress();
      await goNext(state.item ? state.item.index - 1 : -1);
    });
  }
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
  };
  for (const [sel, fn] of Object.entries(clicks)) $(sel).addEventListener("click", fn);
  await refreshProgress();
  const fromHash = Number.parseInt(location.hash.slice(1), 10);
  if (Number.isInteger(fromHash) && fromHash >= 0 && fromHash < status.objects) await show(fromHash, false);
  else await goNext(-1);
  if (!annotator() && !state.account) $("#annotator").focus();
  document.body.dataset.ready = "1";
}

start().catch((err) => showMessage(`Cannot start: ${err.message}`));
