// Small helpers shared by the pages: JSON requests with readable errors, and element shortcuts.

export const $ = (sel, root = document) => root.querySelector(sel);

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc: [...], msg: "..."}]
    return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return JSON.stringify(detail);
}

// The session's CSRF token (servers with accounts): every POST sends it back in a header.
let csrfToken = null;

// Who is logged in ({login_required, name, role, csrf}); a page that needs a login and has none goes to /login.
export async function loadSession() {
  const me = await getJSON("/api/auth/me");
  csrfToken = me.csrf || null;
  if (me.login_required && !me.name) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);
  }
  return me;
}

export async function logout() {
  await postJSON("/api/auth/logout", {});
  location.assign("/login");
}

function writeHeaders(extra = {}) {
  return csrfToken ? { ...extra, "X-CSRF-Token": csrfToken } : extra;
}

async function handle(response) {
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.status === 401 && !location.pathname.startsWith("/login")) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);
  }
  if (!response.ok) {
    // the server's sentence as it is (the status stays on err.status): no raw "422:" in front of it
    const detail =
      payload && payload.detail !== undefined
        ? detailText(payload.detail)
        : `the server answered ${response.status} ${response.statusText}`.trim();
    throw new ApiError(response.status, detail);
  }
  return payload;
}

export async function getJSON(url) {
  return handle(await fetch(url, { headers: { Accept: "application/json" } }));
}

export async function postJSON(url, body) {
  return handle(
    await fetch(url, {
      method: "POST",
      headers: writeHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify(body),
    }),
  );
}

export async function postForm(url, formData) {
  return handle(await fetch(url, { method: "POST", body: formData, headers: writeHeaders() }));
}

export function requestId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

export function fmt(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const el = $("#toast");
  if (!el) return;
  el.textContent = message;
  el.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.className = "toast"), kind === "error" ? 6000 : 2500);
}
