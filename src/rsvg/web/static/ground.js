// The grounding page: an uploaded (or dataset) image and a query → the predicted box and the attention map.

import { $, fmt, getJSON, loadSession, postForm } from "/static/api.js";
import { BoxEditor } from "/static/boxeditor.js";

const box = new BoxEditor($("#overlay"), { editable: false });
let objectUrl = null;

function setError(text) {
  const e = $("#error");
  e.textContent = text;
  e.hidden = !text;
}

function showImage(src, onReady) {
  const img = $("#photo");
  $("#heatmap").hidden = true;
  $("#result").hidden = true;
  box.setBox(null);
  img.onload = () => {
    $("#stage").classList.remove("empty");
    box.setImageSize(img.naturalWidth, img.naturalHeight);
    if (onReady) onReady();
  };
  img.src = src;
}

function onFile() {
  const file = $("#file").files[0];
  if (!file) return;
  $("#pick").value = "";
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(file);
  setError("");
  showImage(objectUrl);
}

function onPick(images) {
  const id = $("#pick").value;
  if (!id) return;
  $("#file").value = "";
  const im = images.find((x) => x.id === id);
  const list = $("#suggestions");
  list.replaceChildren(...(im ? im.expressions : []).map((t) => new Option(t)));
  if (im && im.expressions.length) $("#query").placeholder = `e.g. ${im.expressions[0]}`;
  setError("");
  showImage(im.url);
}

function applyOpacity() {
  $("#heatmap").style.opacity = String(Number($("#opacity").value) / 100);
}

async function submit(e) {
  e.preventDefault();
  setError("");
  const file = $("#file").files[0];
  const pick = $("#pick").value;
  if (!file && !pick) return setError("Choose an image first (upload one, or pick one of the dataset's).");
  const text = $("#query").value.trim();
  if (!text) return setError("Type a query: the sentence that describes the object.");
  const form = new FormData();
  if (file) form.append("image", file);
  else form.append("dataset_image", pick);
  form.append("query", text);
  form.append("attention", $("#show-attention").checked ? "true" : "false");
  const button = $("#go");
  button.disabled = true;
  button.textContent = "Grounding…";
  try {
    const r = await postForm("/api/ground", form);
    const [x1, y1, x2, y2] = r.box;
    box.setImageSize(r.width, r.height);
    box.setBox(r.box);
    $("#box-px").textContent = `x1 ${fmt(x1)}, y1 ${fmt(y1)}, x2 ${fmt(x2)}, y2 ${fmt(y2)}`;
    $("#box-size").textContent = `${fmt(x2 - x1)} × ${fmt(y2 - y1)} px`;
    $("#image-size").textContent = `${r.width} × ${r.height} px`;
    $("#score").textContent = r.score == null ? "n/a" : r.score.toFixed(3);
    $("#timing").textContent = `${fmt(r.timing.inference_ms)} ms model, ${fmt(r.timing.total_ms)} ms in all`;
    // which step produced the box, and from where: the cell heatmap is the first look's
    const provenance = $("#provenance");
    provenance.textContent = r.provenance || "";
    provenance.hidden = !r.provenance;
    // why the box may mean little (a query mostly unknown to the text encoder, a 16-bit or transparent image)
    const warnings = $("#warnings");
    warnings.textContent = (r.warnings || []).join("\n");
    warnings.hidden = !(r.warnings || []).length;
    $("#result").hidden = false;
    const heat = $("#heatmap");
    if (r.attention_png) {
      heat.src = r.attention_png;
      heat.hidden = false;
      applyOpacity();
    } else {
      heat.hidden = true;
    }
    document.body.dataset.result = JSON.stringify(r.box);
  } catch (err) {
    setError(err.message);
  } finally {
    button.disabled = false;
    button.textContent = "Ground";
  }
}

async function start() {
  const me = await loadSession();
  if (me.login_required && !me.name) return; // on the way to the login page
  const status = await getJSON("/api/status");
  const parts = [];
  parts.push(status.model_loaded ? `model: ${status.checkpoint}` : "no model loaded (start with --checkpoint)");
  if (status.dataset) parts.push(`dataset: ${status.dataset} (${status.images} images)`);
  $("#server-status").textContent = parts.join(" · ");
  if (!status.model_loaded) setError("No model is loaded: start the server with `rsvg serve --checkpoint RUN/best`.");
  const mb = (status.max_upload_bytes / 1048576).toFixed(0);
  $("#limits").textContent = `Up to ${mb} MB and ${(status.max_image_pixels / 1e6).toFixed(0)} megapixels.`;
  let images = [];
  if (status.dataset) {
    images = await getJSON("/api/dataset/images");
    const pick = $("#pick");
    for (const im of images) pick.add(new Option(`${im.id} (${im.width}×${im.height})`, im.id));
    $("#pick-wrap").hidden = images.length === 0;
  }
  $("#file").addEventListener("change", onFile);
  $("#pick").addEventListener("change", () => onPick(images));
  $("#opacity").addEventListener("input", applyOpacity);
  $("#show-attention").addEventListener("change", () => {
    if (!$("#show-attention").checked) $("#heatmap").hidden = true;
    else if ($("#heatmap").getAttribute("src")) $("#heatmap").hidden = false;
  });
  $("#ground-form").addEventListener("submit", submit);
  document.body.dataset.ready = "1";
}

start().catch((err) => setError(`Cannot start: ${err.message}`));
