// Devices: server-side search (q), status filter, keyset pagination.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, query } from '../api.js';
import { Link } from '../router.jsx';
import { Badge, ErrorBox, fmtAgo, fmtTime } from '../ui.jsx';

const PAGE = 50;
// Kept between visits so "back" from a device shows the same page.
const remembered = { q: '', status: '', cursors: [null] };

export function Devices() {
  const [q, setQ] = useState(remembered.q);
  const [status, setStatus] = useState(remembered.status);
  const [cursors, setCursors] = useState(remembered.cursors); // cursor of each page visited
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const debounce = useRef(null);
  const [applied, setApplied] = useState(remembered.q);

  // Debounce typing; Enter applies at once.
  useEffect(() => {
    clearTimeout(debounce.current);
    debounce.current = setTimeout(() => setApplied(q.trim()), 300);
    return () => clearTimeout(debounce.current);
  }, [q]);

  const after = cursors[cursors.length - 1];
  useEffect(() => {
    const n = ++seq.current;
    setLoading(true);
    get(`devices${query({ q: applied, status, limit: PAGE, after })}`).then(
      (d) => {
        if (n !== seq.current) return;
        // The old array answer (before pagination) still renders.
        const body = Array.isArray(d) ? { items: d, next: null, total: d.length } : d;
        setPage(body);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (n !== seq.current) return;
        setError(e);
        setLoading(false);
      },
    );
    Object.assign(remembered, { q: applied, status, cursors });
  }, [applied, status, after]);

  const resetTo = (fn) => {
    setCursors([null]);
    fn();
  };

  const items = (page && page.items) || [];
  const pageNo = cursors.length;
  const from = (pageNo - 1) * PAGE + (items.length ? 1 : 0);
  const to = (pageNo - 1) * PAGE + items.length;
  return (
    <>
      <h1>Devices</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          clearTimeout(debounce.current);
          resetTo(() => setApplied(q.trim()));
        }}
      >
        <div class="field">
          <label for="device-search">Search devices</label>
          <input
            id="device-search"
            type="search"
            name="q"
            value={q}
            placeholder="id or part of it"
            autocomplete="off"
            onInput={(e) => {
              setCursors([null]);
              setQ(e.currentTarget.value);
            }}
          />
        </div>
        <div class="field">
          <label for="device-status">Status</label>
          <select
            id="device-status"
            value={status}
            onChange={(e) => resetTo(() => setStatus(e.currentTarget.value))}
          >
            <option value="">any</option>
            <option value="active">active</option>
            <option value="suspended">suspended</option>
            <option value="revoked">revoked</option>
          </select>
        </div>
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      <ErrorBox error={error} what="devices" />
      <p class="muted" role="status" aria-live="polite" data-testid="device-count">
        {loading
          ? 'Searching…'
          : page
            ? `${page.total ?? items.length} matching device${(page.total ?? items.length) === 1 ? '' : 's'}${
                items.length ? `, showing ${from}–${to}` : ''
              }`
            : ''}
      </p>
      {items.length ? (
        <div class="table-wrap">
          <table class="devices">
            <caption class="visually-hidden">Devices, page {pageNo}</caption>
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Status</th>
                <th scope="col">Groups</th>
                <th scope="col">Certificate valid until</th>
                <th scope="col">Last seen</th>
                <th scope="col">Transport</th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.id}>
                  <th scope="row">
                    <Link href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</Link>
                  </th>
                  <td>
                    <Badge value={d.status} />
                  </td>
                  <td>{(d.groups || []).join(', ') || '—'}</td>
                  <td>{fmtTime(d.cert_not_after)}</td>
                  <td>{fmtAgo(d.last_seen)}</td>
                  <td>{d.last_transport || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : !loading && !error ? (
        <p class="muted">No device matches.</p>
      ) : null}
      <nav class="pager" aria-label="Device pages">
        <button
          type="button"
          class="secondary"
          disabled={cursors.length <= 1 || loading}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          ← Previous
        </button>
        <span class="muted">Page {pageNo}</span>
        <button
          type="button"
          class="secondary"
          disabled={!page || !page.next || loading}
          onClick={() => setCursors([...cursors, page.next])}
        >
          Next →
        </button>
      </nav>
    </>
  );
}
