// Shared pieces: data loading, tables, errors, badges, the confirmation dialog.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { get } from './api.js';

const TIME_KEYS = /(^|_)(at|seen|ts|ts_ms|not_before|not_after|cert_not_after|expires|generated_at|last_used_at)$/;

/** Formats Unix seconds (or milliseconds for *_ms) as "2026-12-07 20:15:03 UTC". */
export function fmtTime(v, ms = false) {
  if (v === null || v === undefined || v === '') return '—';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  const d = new Date(ms ? n : n * 1000);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function fmtAgo(unix) {
  if (!unix) return 'never';
  const s = Math.round(Date.now() / 1000 - unix);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function fmtValue(key, v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number' && TIME_KEYS.test(key) && v > 1e9) return fmtTime(v, key.endsWith('_ms'));
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== 'object' || x === null)) return v.join(', ') || '—';
    return v.map((x) => (typeof x === 'object' ? compact(x) : String(x))).join('; ');
  }
  if (typeof v === 'object') return compact(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

function compact(o) {
  if (Array.isArray(o) && o.length === 2 && o.every((x) => typeof x === 'string')) return `${o[0]}: ${o[1]}`;
  if (o && typeof o === 'object' && 'api' in o && 'scopes' in o) {
    return `${o.api}: ${Array.isArray(o.scopes) ? o.scopes.join(' ') : o.scopes}`;
  }
  if (o && typeof o === 'object' && 'api_id' in o && 'scopes' in o) {
    return `${o.api_id}: ${Array.isArray(o.scopes) ? o.scopes.join(' ') : o.scopes}`;
  }
  return JSON.stringify(o);
}

/** Loads a document; returns {data, error, loading, reload}. */
export function useData(path, deps = [], opts = {}) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    get(path, opts).then(
      (data) => n === seq.current && setState({ data, error: null, loading: false }),
      (error) => n === seq.current && setState({ data: null, error, loading: false }),
    );
  }, [path]);
  useEffect(reload, [path, ...deps]);
  return { ...state, reload };
}

/** A list answer may be an array or {items: [...]} */
export function itemsOf(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

export function ErrorBox({ error, what }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <strong>{what ? `Could not load ${what}: ` : 'Error: '}</strong>
      {error.message}
      {error.code ? <span class="code"> ({error.code}{error.status ? `, HTTP ${error.status}` : ''})</span> : null}
    </div>
  );
}

export function Loading({ what }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** A status word as a coloured pill; outcome: "ok" is good, anything else a refusal or error. */
export function Badge({ value, outcome = false }) {
  const v = String(value ?? 'unknown');
  const cls = outcome ? (v === 'ok' ? 'ok' : 'error') : v.replace(/[^a-z_]/gi, '');
  return <span class={`badge badge-${cls}`}>{v}</span>;
}

/** A table of objects; columns from `columns` ([key, label, render?]) or from the rows. */
export function DataTable({ rows, columns, caption, empty = 'Nothing here yet.', rowKey, class: cls }) {
  if (!rows || rows.length === 0) return <p class="muted">{empty}</p>;
  const cols =
    columns ||
    Array.from(rows.reduce((set, r) => (Object.keys(r).forEach((k) => set.add(k)), set), new Set())).map((k) => [
      k,
      k.charAt(0).toUpperCase() + k.slice(1).replace(/_/g, ' '),
    ]);
  return (
    <div class="table-wrap">
      <table class={cls}>
        {caption ? <caption>{caption}</caption> : null}
        <thead>
          <tr>
            {cols.map(([k, label]) => (
              <th scope="col" key={k}>
                {label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={rowKey ? rowKey(r) : i}>
              {cols.map(([k, , render, cls]) => (
                <td key={k} class={cls}>
                  {render ? render(r[k], r) : fmtValue(k, r[k])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * A modal confirmation built on <dialog>: showModal() makes the page inert
 * (focus stays inside), Escape cancels, focus returns to the opener.
 */
export function ConfirmDialog({ open, title, children, confirmLabel, danger, onConfirm, onClose, busy }) {
  const ref = useRef(null);
  const opener = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement;
      d.showModal();
      const first = d.querySelector('[data-autofocus]') || d.querySelector('input, textarea, select, button');
      if (first) first.focus();
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);
  useEffect(() => {
    const d = ref.current;
    if (!d) return undefined;
    const closed = () => {
      if (opener.current && opener.current.isConnected && !opener.current.disabled) opener.current.focus();
      else {
        // The opener is gone (e.g. "Revoke…" after revoking): focus the page heading.
        const h = document.querySelector('main h1');
        if (h) {
          h.setAttribute('tabindex', '-1');
          h.focus();
        }
      }
      onClose();
    };
    d.addEventListener('close', closed);
    return () => d.removeEventListener('close', closed);
  }, [onClose]);
  const submit = (e) => {
    e.preventDefault();
    onConfirm(new FormData(e.currentTarget));
  };
  return (
    <dialog ref={ref} aria-labelledby="dialog-title" class="dialog">
      <form method="dialog" onSubmit={submit}>
        <h2 id="dialog-title">{title}</h2>
        {children}
        <div class="actions">
          <button type="button" class="secondary" onClick={() => ref.current && ref.current.close()}>
            Cancel
          </button>
          <button type="submit" class={danger ? 'danger' : 'primary'} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** Shows a secret that the server returns exactly once. */
export function OneTimeSecret({ result, onDismiss }) {
  if (!result) return null;
  const secretKeys = ['client_secret', 'secret', 'key', 'api_key', 'token'];
  const secrets = Object.entries(result).filter(([k, v]) => secretKeys.includes(k) && typeof v === 'string');
  return (
    <section class="secret" aria-labelledby="secret-title" tabIndex={-1} ref={(el) => el && el.focus()}>
      <h3 id="secret-title">Copy this now — it is shown only once</h3>
      {secrets.length ? (
        <dl>
          {secrets.map(([k, v]) => (
            <div key={k}>
              <dt>{k.replace(/_/g, ' ')}</dt>
              <dd>
                <code class="secret-value">{v}</code>
              </dd>
            </div>
          ))}
        </dl>
      ) : null}
      <details>
        <summary>Full answer</summary>
        <pre>{JSON.stringify(result, null, 2)}</pre>
      </details>
      <button type="button" class="secondary" onClick={onDismiss}>
        I have stored it
      </button>
    </section>
  );
}

/** Grants typed one per line as "api scope scope" (or "api: scope scope"; the api may be a URL). */
export function parseGrants(text) {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [api, ...scopes] = l.split(/\s+/);
      return { api: api.replace(/:$/, ''), scopes: scopes.join(' ') };
    });
}
