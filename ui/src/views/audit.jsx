// Audit: filtered history from /admin/v1/audit, live events from the SSE
// stream /admin/v1/audit/stream with the same filters.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, query } from '../api.js';
import { Badge, ErrorBox, fmtTime } from '../ui.jsx';

const MAX_ROWS = 500;

function toMs(local) {
  if (!local) return '';
  const t = Date.parse(`${local}Z`);
  return Number.isFinite(t) ? t : '';
}

export function Audit() {
  const [filters, setFilters] = useState({ device: '', client: '', action: '', outcome: '', since: '', until: '' });
  const [rows, setRows] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(true);
  const [liveState, setLiveState] = useState('off');
  const [loading, setLoading] = useState(false);
  const formRef = useRef(null);

  const params = (extra = {}) =>
    query({
      device: filters.device,
      client: filters.client,
      action: filters.action,
      outcome: filters.outcome,
      since: toMs(filters.since),
      until: toMs(filters.until),
      ...extra,
    });

  const load = async (more = false) => {
    setLoading(true);
    try {
      const d = await get(`audit${params({ limit: 100, after_id: more ? next : '' })}`);
      const items = Array.isArray(d) ? d : d.items || [];
      setRows((old) => (more ? [...old, ...items] : items));
      setNext(Array.isArray(d) ? null : d.next_after_id ?? null);
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    load(false);
  }, [filters]);

  useEffect(() => {
    if (!live || filters.until) {
      setLiveState('off');
      return undefined;
    }
    setLiveState('connecting');
    const es = new EventSource(`/admin/v1/audit/stream${params()}`, { withCredentials: true });
    es.onopen = () => setLiveState('live');
    es.onerror = () => setLiveState(es.readyState === EventSource.CLOSED ? 'unavailable' : 'reconnecting');
    es.onmessage = (m) => {
      try {
        const ev = JSON.parse(m.data);
        setRows((old) => (old.some((r) => r.id === ev.id) ? old : [ev, ...old].slice(0, MAX_ROWS)));
      } catch {
        /* a malformed event is skipped */
      }
    };
    return () => es.close();
  }, [live, filters]);

  const apply = (e) => {
    e.preventDefault();
    const fd = new FormData(formRef.current);
    setFilters(Object.fromEntries(['device', 'client', 'action', 'outcome', 'since', 'until'].map((k) => [k, String(fd.get(k) || '').trim()])));
  };

  return (
    <>
      <div class="page-head">
        <h1>Audit</h1>
        <p class="live" role="status" aria-live="polite">
          <span class={`dot ${liveState}`} aria-hidden="true" /> {liveState === 'live' ? 'Live' : `Live: ${liveState}`}
        </p>
      </div>
      <form class="filters" ref={formRef} onSubmit={apply} aria-label="Audit filters">
        <div class="field">
          <label for="a-device">Device</label>
          <input id="a-device" name="device" autocomplete="off" />
        </div>
        <div class="field">
          <label for="a-client">Client</label>
          <input id="a-client" name="client" autocomplete="off" />
        </div>
        <div class="field">
          <label for="a-action">Action</label>
          <input id="a-action" name="action" placeholder="token.issued" autocomplete="off" />
        </div>
        <div class="field">
          <label for="a-outcome">Outcome</label>
          <input id="a-outcome" name="outcome" list="a-outcomes" placeholder="ok, or an error code" autocomplete="off" />
          <datalist id="a-outcomes">
            <option value="ok" />
            <option value="device_revoked" />
            <option value="device_suspended" />
            <option value="refused" />
          </datalist>
        </div>
        <div class="field">
          <label for="a-since">Since (UTC)</label>
          <input id="a-since" name="since" type="datetime-local" />
        </div>
        <div class="field">
          <label for="a-until">Until (UTC)</label>
          <input id="a-until" name="until" type="datetime-local" />
        </div>
        <div class="field check">
          <input id="a-live" type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} />
          <label for="a-live">Live updates</label>
        </div>
        <button type="submit" class="primary">
          Apply filters
        </button>
      </form>
      <ErrorBox error={error} what="the audit log" />
      <div class="table-wrap">
        <table class="audit">
          <caption class="visually-hidden">Audit events, newest first</caption>
          <thead>
            <tr>
              <th scope="col" class="w-time">Time (UTC)</th>
              <th scope="col" class="w-actor">Actor</th>
              <th scope="col" class="w-action">Action</th>
              <th scope="col" class="w-subject">Subject</th>
              <th scope="col" class="w-outcome">Outcome</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td class="nowrap">{r.ts_ms !== undefined ? fmtTime(r.ts_ms, true) : fmtTime(r.ts)}</td>
                <td>{r.actor}</td>
                <td>
                  <code>{r.action}</code>
                </td>
                <td>{r.subject}</td>
                <td>
                  <Badge value={r.outcome} outcome />
                </td>
                <td class="detail">{r.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {!rows.length && !loading ? <p class="muted">No audit event matches.</p> : null}
      <div class="actions left">
        <button type="button" class="secondary" disabled={!next || loading} onClick={() => load(true)}>
          {loading ? 'Loading…' : 'Older events'}
        </button>
      </div>
    </>
  );
}
