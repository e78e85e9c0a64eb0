// The grounding page: an uploaded (or dataset) image and a query → the predicted box, its score and warnings,
// the first look's box (models with later steps) and the attention map.

import { $, fmt, getJSON, loadSession, postForm, postJSON } from "/static/api.js";
import { BoxEditor } from "/static/boxeditor.js";

const NS = "http://www.w3.org/2000/svg";
// what the server reads (POST /api/ground answers 415 for anything else): by MIME type or by file name
const IMAGE_TYPES = ["image/jpeg", "image/png", "image/tiff", "image/bmp", "image/x-ms-bmp", "image/webp"];
const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"];
const COUNT_DELAY_MS = 200; // the token counter asks the server once typing pauses this long

const box = new BoxEditor($("#overlay"), { editable: false });
const firstLook = makeFirstLook($("#overlay"));
let objectUrl = null;
let currentFile = null; // the upload that is shown (a refused pick leaves it in place)
let status = null; // GET /api/status: the model's and the server's limits
let lastCount = null; // {text, count}: the server's measure of the query as last typed
let countTimer = null;

// Server sentences start in lower case ("query needs 40 tokens, ..."): shown on their own, they start a sentence.
function sentence(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
}

function setError(text) {
  const e = $("#error");
  e.textContent = sentence(text);
  e.hidden = !text;
}

function errorText(err) {
  // fetch itself failing (server down, network gone) throws a TypeError with the browser's wording
  return err instanceof TypeError ? "cannot reach the server: is `rsvg serve` still running?" : err.message;
}

// The first look's box: dashed yellow with a label, under the red answer (as `rsvg ground`'s pictures draw it).
function makeFirstLook(svg) {
  const g = document.createElementNS(NS, "g");
  g.setAttribute("id", "first-look");
  g.setAttribute("class", "first-look");
  g.setAttribute("visibility", "hidden");
  const rect = document.createElementNS(NS, "rect");
  const label = document.createElementNS(NS, "text");
  label.textContent = "first look";
  g.append(rect, label);
  svg.insertBefore(g, svg.firstChild);
  return { g, rect, label, box: null };
}

function drawFirstLook() {
  const { g, rect, label, box: b } = firstLook;
  $("#legend-first-look").hidden = !b;
  if (!b) {
    g.setAttribute("visibility", "hidden");
    return;
  }
  const s = box.scale(); // image pixels per screen pixel: strokes and text keep their size on screen
  const [x1, y1, x2, y2] = b;
  const attrs = { x: x1, y: y1, width: x2 - x1, height: y2 - y1, "stroke-width": 2.5 * s };
  for (const [k, v] of Object.entries(attrs)) rect.setAttribute(k, v);
  rect.setAttribute("stroke-dasharray", `${7 * s} ${4 * s}`);
  label.setAttribute("font-size", 12 * s);
  label.setAttribute("stroke-width", 3 * s);
  label.setAttribute("x", x1 + 2 * s);
  label.setAttribute("y", y1 > 16 * s ? y1 - 4 * s : y1 + 14 * s); // above the box, or inside it at the top edge
  g.setAttribute("visibility", "visible");
}

function setFirstLook(b) {
  firstLook.box = b;
  drawFirstLook();
}

function showImage(src, onReady) {
  const img = $("#photo");
  $("#heatmap").hidden = true;
  $("#heatmap").removeAttribute("src");
  $("#result").hidden = true;
  $("#verdict").hidden = true;
  box.setBox(null);
  setFirstLook(null);
  delete document.body.dataset.result;
  img.onload = () => {
    $("#stage").classList.remove("empty");
    $("#placeholder").textContent = "Choose an image to begin.";
    box.setImageSize(img.naturalWidth, img.naturalHeight);
    if (onReady) onReady();
  };
  img.onerror = () => {
    $("#stage").classList.add("empty");
    $("#placeholder").textContent =
      "This browser cannot show the image (a TIFF?): it is still grounded, and the box is given in pixels.";
  };
  img.src = src;
}

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? "" : name.slice(dot).toLowerCase();
}

// Why a picked file cannot be grounded, in words, or null: checked at once, not when the form is sent.
function fileProblem(file) {
  if (!IMAGE_TYPES.includes(file.type) && !IMAGE_EXTENSIONS.includes(extension(file.name))) {
    return `“${file.name}” is not an image this page can ground: choose a JPEG, PNG, TIFF, BMP or WebP file.`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (status && file.size > status.max_upload_bytes) {
    const mb = (n) => (n / 1048576).toFixed(1);
    return `“${file.name}” is ${mb(file.size)} MB, over this server's limit of ${mb(status.max_upload_bytes)} MB.`;
  }
  return null;
}

// Put the file input back to the file that is shown (or to nothing), after a refused pick.
function restoreFileInput() {
  const input = $("#file");
  try {
    const kept = new DataTransfer();
    if (currentFile) kept.items.add(currentFile);
    input.files = kept.files;
  } catch {
    if (!currentFile) input.value = "";
  }
}

function onFile() {
  const file = $("#file").files[0];
  if (!file) {
    restoreFileInput(); // a cancelled dialog keeps what is shown
    return;
  }
  const problem = fileProblem(file);
  if (problem) {
    setError(problem); // the image and the result shown stay as they are
    restoreFileInput();
    document.body.dataset.refused = file.name;
    return;
  }
  delete document.body.dataset.refused;
  currentFile = file;
  $("#pick").value = "";
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(file);
  setError("");
  showImage(objectUrl);
}

function onPick(images) {
  const id = $("#pick").value;
  if (!id) return;
  currentFile = null;
  $("#file").value = "";
  const im = images.find((x) => x.id === id);
  const list = $("#suggestions");
  list.replaceChildren(...(im ? im.expressions : []).map((t) => new Option(t)));
  if (im && im.expressions.length) $("#query").placeholder = `e.g. ${im.expressions[0]}`;
  setError("");
  showImage(im.url);
}

// The dataset's image list is fetched when the picker is first opened, not with the page: a visitor who
// uploads never downloads it, and the server's ETag lets the browser reuse the list it already holds (304).
async function openPicker() {
  const button = $("#pick-open");
  button.disabled = true;
  button.textContent = "Loading the dataset's images…";
  try {
    const images = await getJSON("/api/dataset/images");
    const pick = $("#pick");
    const options = images.map((im) => new Option(`${im.id} (${im.width}×${im.height})`, im.id));
    pick.replaceChildren(new Option("—", ""), ...options);
    pick.addEventListener("change", () => onPick(images));
    button.hidden = true;
    $("#pick-wrap").hidden = false;
    pick.focus();
    document.body.dataset.images = String(images.length);
  } catch (err) {
    setError(`cannot load the dataset's images: ${errorText(err)}`);
    button.disabled = false;
    button.textContent = "or pick one of the dataset's images";
  }
}

function applyOpacity() {
  $("#heatmap").style.opacity = String(Number($("#opacity").value) / 100);
}

// ---- the query's length, counted by the server with the model's tokenizer as the user types ----

function showCount(count) {
  const counter = $("#query-count");
  const over = !count.fits;
  counter.textContent = over
    ? `${count.tokens} / ${count.max_tokens} tokens: too long. ${sentence(count.detail)}`
    : `${count.tokens} / ${count.max_tokens} tokens`;
  counter.classList.toggle("over", over);
  $("#query").classList.toggle("over", over);
  const warning = $("#query-warning");
  warning.textContent = sentence((count.warnings || []).join("\n"));
  warning.hidden = !(count.warnings || []).length;
  counter.dataset.tokens = String(count.tokens);
  counter.dataset.fits = count.fits ? "1" : "0";
}

async function countQuery() {
  const text = $("#query").value;
  if (!status || !status.model_loaded) return null;
  if (!text.trim()) {
    lastCount = null;
    $("#query-count").textContent = `up to ${status.max_tokens} tokens`;
    $("#query-count").classList.remove("over");
    $("#query").classList.remove("over");
    $("#query-warning").hidden = true;
    return null;
  }
  if (lastCount && lastCount.text === text) return lastCount.count;
  const count = await postJSON("/api/tokens", { query: text });
  if ($("#query").value === text) {
    lastCount = { text, count };
    showCount(count);
  }
  return count;
}

function onQueryInput() {
  clearTimeout(countTimer);
  countTimer = setTimeout(() => countQuery().catch(() => {}), COUNT_DELAY_MS);
}

// ---- grounding ----

function showResult(r) {
  const [x1, y1, x2, y2] = r.box;
  box.setImageSize(r.width, r.height);
  box.setBox(r.box);
  // the first look's box, where a later step moved the answer away from it (the heatmap is the first look's)
  const moved = Object.values(r.steps || {}).some(Boolean);
  setFirstLook(moved && r.first_look_box ? r.first_look_box : null);
  $("#box-px").textContent = `x1 ${fmt(x1)}, y1 ${fmt(y1)}, x2 ${fmt(x2)}, y2 ${fmt(y2)}`;
  $("#box-size").textContent = `${fmt(x2 - x1)} × ${fmt(y2 - y1)} px`;
  $("#image-size").textContent = `${r.width} × ${r.height} px`;
  $("#timing").textContent = `${fmt(r.timing.inference_ms)} ms model, ${fmt(r.timing.total_ms)} ms in all`;
  const warnings = r.warnings || [];
  const score = $("#score");
  score.textContent = r.score == null ? "n/a" : r.score.toFixed(3);
  score.classList.toggle("doubtful", warnings.length > 0);
  // why the box may mean little (a query mostly unknown to the text encoder, a 16-bit or transparent image):
  // beside the score, since a high score does not make such a box right
  const warningBox = $("#warnings");
  warningBox.textContent = warnings.map(sentence).join("\n");
  warningBox.hidden = !warnings.length;
  // which step produced the box, and from where: the cell heatmap is the first look's
  const provenance = $("#provenance");
  provenance.textContent = r.provenance || "";
  provenance.hidden = !r.provenance;
  $("#result").hidden = false;
  $("#verdict").hidden = false;
  $("#query-warning").hidden = true; // the answer's own warning, above the image, says it now
  const heat = $("#heatmap");
  if (r.attention_png) {
    heat.src = r.attention_png;
    heat.hidden = !$("#show-attention").checked;
    applyOpacity();
  } else {
    heat.hidden = true;
    heat.removeAttribute("src");
  }
  document.body.dataset.result = JSON.stringify(r.box);
}

async function submit(e) {
  e.preventDefault();
  setError("");
  const pick = $("#pick").value;
  if (!currentFile && !pick) return setError("Choose an image first (upload one, or pick one of the dataset's).");
  const text = $("#query").value.trim();
  if (!text) return setError("Type a query: the sentence that describes the object.");
  const button = $("#go");
  button.disabled = true;
  button.textContent = "Grounding…";
  try {
    const count = await countQuery().catch(() => null); // a query the server would refuse is not sent
    if (count && !count.fits) return setError(count.detail);
    const form = new FormData();
    if (currentFile) form.append("image", currentFile);
    else form.append("dataset_image", pick);
    form.append("query", text);
    form.append("attention", $("#show-attention").checked ? "true" : "false");
    showResult(await postForm("/api/ground", form));
  } catch (err) {
    setError(errorText(err));
  } finally {
    button.disabled = false;
    button.textContent = "Ground";
  }
}

async function start() {
  const me = await loadSession();
  if (me.login_required && !me.name) return; // on the way to the login page
  status = await getJSON("/api/status");
  const parts = [];
  const model = status.checkpoint ? `model: ${status.checkpoint}` : "model loaded";
  parts.push(status.model_loaded ? model : "no model loaded (start with --checkpoint)");
  if (status.dataset) parts.push(`dataset: ${status.dataset} (${status.images} images)`);
  $("#server-status").textContent = parts.join(" · ");
  if (!status.model_loaded) setError("No model is loaded: start the server with `rsvg serve --checkpoint RUN/best`.");
  const mb = (status.max_upload_bytes / 1048576).toFixed(0);
  const limits = [`Up to ${mb} MB and ${(status.max_image_pixels / 1e6).toFixed(0)} megapixels`];
  if (status.max_tokens) limits.push(`queries of up to ${status.max_tokens} tokens (the model's limit)`);
  $("#limits").textContent = `${limits.join("; ")}.`;
  if (status.model_loaded) $("#query-count").textContent = `up to ${status.max_tokens} tokens`;
  if (status.dataset && status.images > 0) {
    const open = $("#pick-open");
    open.textContent = `or pick one of the dataset's ${status.images} images`;
    open.hidden = false;
    open.addEventListener("click", openPicker);
  }
  $("#file").addEventListener("change", onFile);
  $("#query").addEventListener("input", onQueryInput);
  $("#opacity").addEventListener("input", applyOpacity);
  $("#show-attention").addEventListener("change", () => {
    if (!$("#show-attention").checked) $("#heatmap").hidden = true;
    else if ($("#heatmap").getAttribute("src")) $("#heatmap").hidden = false;
  });
  window.addEventListener("resize", () => {
    box.render();
    drawFirstLook();
  });
  $("#ground-form").addEventListener("submit", submit);
  applyOpacity();
  document.body.dataset.ready = "1";
}

start().catch((err) => setError(`cannot start: ${errorText(err)}`));
