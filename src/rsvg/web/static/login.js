// The login form: posts the name and password, then goes back to the page that asked for the login.

import { $, postJSON } from "/static/api.js";

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/review";
  // only pages of this server: "//host", "/\\host" or a full URL elsewhere fall back to the review page
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return "/review";
  }
  if (url.origin !== location.origin || !next.startsWith("/")) return "/review";
  return url.pathname + url.search + url.hash;
}

async function submit(e) {
  e.preventDefault();
  const error = $("#login-error");
  error.hidden = true;
  $("#login-submit").disabled = true;
  try {
    await postJSON("/api/auth/login", { name: $("#name").value.trim(), password: $("#password").value });
    location.assign(nextPage());
  } catch (err) {
    error.textContent = err.status === 429 ? err.message : "Wrong user name or password.";
    if (err.status !== 401 && err.status !== 429) error.textContent = err.message;
    error.hidden = false;
    $("#password").select();
  } finally {
    $("#login-submit").disabled = false;
  }
}

$("#login-form").addEventListener("submit", submit);
$("#name").focus();
document.body.dataset.ready = "1";
