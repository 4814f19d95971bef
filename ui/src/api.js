// Talks to the broker: /ui/session for the CSRF token, /admin/v1 for data.
// Every request is same-origin with the session cookie; every state-changing
// request carries X-CSRF-Token. Errors keep the server's {error, message}.

export const ADMIN = '/admin/v1';

let session = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body === 'object') {
        code = body.error || code;
        message = body.message || body.error_description || message;
      }
    } catch {
      if (text && text.length < 300) message = text;
    }
  } catch {
    /* no body */
  }
  if (res.status === 404 && code === `http_404`) {
    message = `${message} — this broker does not offer this route yet`;
  }
  return new ApiError(res.status, code, message);
}

export async function loadSession() {
  const res = await fetch('/ui/session', {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  if (!res.ok) throw await errorFrom(res);
  session = await res.json();
  return session;
}

export function currentSession() {
  return session;
}

function onUnauthorized(err) {
  if (err.status === 401) {
    sessionListeners.forEach((f) => f(err));
  }
  return err;
}

const sessionListeners = new Set();
export function onSessionLost(f) {
  sessionListeners.add(f);
  return () => sessionListeners.delete(f);
}

/** GET a JSON (or text, with {text: true}) document. */
export async function get(path, { text = false } = {}) {
  const res = await fetch(path.startsWith('/') ? path : `${ADMIN}/${path}`, {
    credentials: 'same-origin',
    headers: { Accept: text ? 'application/toml, text/plain' : 'application/json' },
  });
  if (!res.ok) throw onUnauthorized(await errorFrom(res));
  return text ? res.text() : res.json();
}

/** POST/PUT/PATCH/DELETE with the CSRF token; body is JSON unless contentType is given. */
export async function send(method, path, body, { contentType } = {}) {
  if (!session) await loadSession();
  const headers = { Accept: 'application/json', 'X-CSRF-Token': session.csrf_token };
  let payload;
  if (body !== undefined) {
    if (contentType) {
      headers['Content-Type'] = contentType;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  const res = await fetch(path.startsWith('/') ? path : `${ADMIN}/${path}`, {
    method,
    credentials: 'same-origin',
    headers,
    body: payload,
  });
  if (!res.ok) throw onUnauthorized(await errorFrom(res));
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) return res.json();
  return res.text();
}

export async function logout() {
  if (!session) await loadSession();
  await fetch('/ui/logout', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-CSRF-Token': session.csrf_token },
    redirect: 'manual',
  });
  window.location.assign('/ui/login');
}

/** Builds a query string from the non-empty values of an object. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
