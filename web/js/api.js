// The REST client: the signed-in session (shared by every tab through localStorage),
// token refresh, and API problems turned into sentences a person can read.

const KEY = "ecommesh.session";

/** An error from the API, with the server's explanation. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem;
  }
}

function describe(status, problem) {
  if (!problem) return `The server answered ${status}.`;
  let text = problem.detail || problem.title || `The server answered ${status}`;
  text = text.charAt(0).toUpperCase() + text.slice(1);
  if (!/[.!?]$/.test(text)) text += ".";
  if (Array.isArray(problem.errors) && problem.errors.length) {
    text += " " + problem.errors.map((e) => `${e.field}: ${e.message}.`).join(" ");
  }
  if (status === 503) text += " Please try again in a moment.";
  return text;
}

export function session() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

export function setSession(s) {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  window.dispatchEvent(new CustomEvent("session", { detail: s }));
}

// Another tab signed in or out.
window.addEventListener("storage", (e) => {
  if (e.key === KEY) window.dispatchEvent(new CustomEvent("session", { detail: session() }));
});

async function send(method, path, body, token, headers = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (token) h.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { detail: "The shop cannot be reached. Check your connection and try again." });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Refresh tokens are single use: tabs take turns, and a tab that waited uses the pair
// another tab just got instead of spending the old token again.
async function refresh(stale) {
  const run = async () => {
    const now = session();
    if (!now) return null;
    if (now.access_token !== stale) return now;
    try {
      const fresh = await send("POST", "/auth/refresh", { refresh_token: now.refresh_token });
      setSession(fresh);
      return fresh;
    } catch (e) {
      if (e.status === 401) setSession(null);
      throw e;
    }
  };
  return navigator.locks ? navigator.locks.request("ecommesh-refresh", run) : run();
}

/** Calls the API as the signed-in user (if any), refreshing an expired token once. */
export async function api(method, path, body, headers) {
  const s = session();
  try {
    return await send(method, path, body, s && s.access_token, headers);
  } catch (e) {
    if (e.status !== 401 || !s) throw e;
    const fresh = await refresh(s.access_token);
    if (!fresh) throw e;
    return send(method, path, body, fresh.access_token, headers);
  }
}

/** GETs `path`; on failure shows the problem in `box` instead and returns null. */
export async function getOrShow(box, path) {
  try {
    return await api("GET", path);
  } catch (e) {
    box.replaceChildren(el("p", { class: "form-error", role: "alert" }, e.message));
    return null;
  }
}

/** A fresh access token for the websocket, or null when signed out. */
export async function accessToken() {
  const s = session();
  if (!s) return null;
  try {
    await send("GET", "/me", undefined, s.access_token);
    return s.access_token;
  } catch (e) {
    if (e.status !== 401) return s.access_token;
    const fresh = await refresh(s.access_token);
    return fresh && fresh.access_token;
  }
}

export async function signIn(email, password) {
  setSession(await send("POST", "/auth/login", { email, password }));
  return session();
}

export async function signUp(name, email, password) {
  setSession(await send("POST", "/auth/register", { name, email, password }));
  return session();
}

export async function signOut() {
  const s = session();
  setSession(null);
  if (s) {
    try {
      await send("POST", "/auth/logout", undefined, s.access_token);
    } catch {
      /* signed out locally either way */
    }
  }
}

// Money is integer minor units; only display divides.
const digitsOf = (currency) =>
  new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;

export function formatMoney(m) {
  if (!m) return "";
  const d = digitsOf(m.currency);
  return new Intl.NumberFormat(undefined, { style: "currency", currency: m.currency }).format(m.amount / 10 ** d);
}

/** 1250 USD -> "12.50", exactly (for form fields). */
export function toDecimal(m) {
  const d = digitsOf(m.currency);
  if (!d) return String(m.amount);
  const s = String(Math.abs(m.amount)).padStart(d + 1, "0");
  return `${m.amount < 0 ? "-" : ""}${s.slice(0, -d)}.${s.slice(-d)}`;
}

/** "12.5" -> 1250 (for USD), exactly, or null when it is not an amount. */
export function parseMoney(text, currency) {
  const d = digitsOf(currency);
  const m = String(text).trim().match(d ? new RegExp(`^(\\d+)(?:\\.(\\d{1,${d}}))?$`) : /^(\d+)$/);
  if (!m) return null;
  const frac = (m[2] || "").padEnd(d, "0");
  const value = Number(m[1] + frac);
  return Number.isSafeInteger(value) ? value : null;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Shows a message to the user in the page's live region. */
export function notify(text, kind = "info") {
  const box = document.getElementById("messages");
  if (!box) return;
  const item = el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}
