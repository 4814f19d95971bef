// Dashboard: /admin/v1/dashboard every 5 s, /admin/v1/doctor on demand.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get } from '../api.js';
import { ColumnChart, HBarChart, LineChart } from '../charts.jsx';
import { Badge, DataTable, ErrorBox, Loading, fmtAgo, fmtTime, useData } from '../ui.jsx';

const REFRESH_MS = 5000;
const STATUS_ORDER = ['active', 'suspended', 'revoked'];
const TRANSPORTS = [
  { key: 'coap', label: 'CoAP', cls: 't-coap' },
  { key: 'mqtt', label: 'MQTT', cls: 't-mqtt' },
  { key: 'https', label: 'HTTPS', cls: 't-https' },
  { key: 'oauth', label: 'OAuth', cls: 't-oauth' },
];

export function Dashboard() {
  const [dash, setDash] = useState(null);
  const [error, setError] = useState(null);
  const [updated, setUpdated] = useState(null);
  const timer = useRef(null);

  useEffect(() => {
    let alive = true;
    const tick = async () => {
      try {
        const d = await get('dashboard');
        if (!alive) return;
        setDash(d);
        setError(null);
        setUpdated(new Date());
      } catch (e) {
        if (alive) setError(e);
      }
      if (alive) timer.current = setTimeout(tick, REFRESH_MS);
    };
    tick();
    return () => {
      alive = false;
      clearTimeout(timer.current);
    };
  }, []);

  return (
    <>
      <div class="page-head">
        <h1>Dashboard</h1>
        <p class="muted" aria-live="off">
          {updated ? `Updated ${updated.toISOString().slice(11, 19)} UTC, every 5 s` : ''}
        </p>
      </div>
      <ErrorBox error={error} what="the dashboard" />
      {!dash && !error ? <Loading what="the dashboard" /> : null}
      {dash ? <DashboardBody d={dash} /> : null}
      <Doctor />
    </>
  );
}

function DashboardBody({ d }) {
  const [recent, setRecent] = useState(true); // the last 15 minutes, or the whole hour
  const by = (d.devices && d.devices.by_status) || {};
  const statuses = [...STATUS_ORDER, ...Object.keys(by).filter((s) => !STATUS_ORDER.includes(s))];
  const statusData = statuses.map((s) => ({ label: s, value: by[s] || 0, cls: `st-${s}` }));
  const expiry = (d.cert_expiry && d.cert_expiry.buckets) || [];
  const hour = ((d.tokens && d.tokens.per_minute) || []).map((p) => ({ ...p, t: p.minute }));
  const perMinute = recent ? hour.slice(-15) : hour;
  const refusals = ((d.refusals && d.refusals.by_reason) || []).map((r) => ({
    label: r.reason,
    value: r.count,
    cls: 'c-refused',
  }));
  const ren = d.renewals || {};
  return (
    <div class="grid">
      <section class="card wide" aria-labelledby="h-tokens">
        <div class="page-head">
          <h2 id="h-tokens">Tokens per minute by transport</h2>
          <div class="segmented" role="group" aria-label="Time window">
            <button type="button" aria-pressed={recent} onClick={() => setRecent(true)}>
              Last 15 min
            </button>
            <button type="button" aria-pressed={!recent} onClick={() => setRecent(false)}>
              Last hour
            </button>
          </div>
        </div>
        <LineChart
          id="tokens"
          title={`Tokens issued per minute, last ${recent ? '15 minutes' : 'hour'}`}
          points={perMinute}
          series={TRANSPORTS}
          width={1040}
          height={230}
        />
      </section>
      <section class="card" aria-labelledby="h-devices">
        <h2 id="h-devices">Devices</h2>
        <p class="big">
          <span data-testid="devices-total">{(d.devices && d.devices.total) ?? 0}</span> <span class="muted">in total</span>
        </p>
        <HBarChart id="devices-by-status" title="Devices by status" data={statusData} />
      </section>
      <section class="card" aria-labelledby="h-expiry">
        <h2 id="h-expiry">Certificate expiry</h2>
        <ColumnChart
          id="cert-expiry"
          title={`Certificates expiring per day, next ${(d.cert_expiry && d.cert_expiry.days) || 90} days`}
          data={expiry}
        />
      </section>
      <section class="card" aria-labelledby="h-refusals">
        <h2 id="h-refusals">Refusals by reason</h2>
        <HBarChart
          id="refusals"
          title={`Refused token requests, last ${Math.round(((d.refusals && d.refusals.window_secs) || 3600) / 60)} min`}
          data={refusals}
          empty="No refusals in this window."
        />
      </section>
      <section class="card" aria-labelledby="h-renewals">
        <h2 id="h-renewals">Renewal health</h2>
        <p class="muted">Last {Math.round((ren.window_secs || 2592000) / 86400)} days</p>
        <dl class="tiles" data-testid="renewals">
          <div class="tile ok">
            <dt>Renewed</dt>
            <dd>{ren.renewed ?? 0}</dd>
          </div>
          <div class={`tile ${ren.failing ? 'bad' : ''}`}>
            <dt>Failing</dt>
            <dd>{ren.failing ?? 0}</dd>
          </div>
          <div class={`tile ${ren.overdue ? 'warn' : ''}`}>
            <dt>Overdue</dt>
            <dd>{ren.overdue ?? 0}</dd>
          </div>
        </dl>
      </section>
      <section class="card wide" aria-labelledby="h-instances">
        <h2 id="h-instances">Instances</h2>
        <DataTable
          rows={d.instances || []}
          empty="No instance has reported yet."
          columns={[
            ['id', 'Instance'],
            ['state', 'State', (v) => <Badge value={v} />],
            ['last_seen', 'Last seen', (v) => <span title={fmtTime(v)}>{fmtAgo(v)}</span>],
            ['detail', 'Detail'],
          ]}
        />
      </section>
    </div>
  );
}

function Doctor() {
  const { data, error, loading, reload } = useData('doctor');
  const findings = (data && data.findings) || [];
  const order = { error: 0, warning: 1, info: 2 };
  const sorted = [...findings].sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3));
  return (
    <section class="card doctor" aria-labelledby="h-doctor">
      <div class="page-head">
        <h2 id="h-doctor">Doctor findings</h2>
        <button type="button" class="secondary" onClick={reload} disabled={loading}>
          {loading ? 'Checking…' : 'Check again'}
        </button>
      </div>
      <ErrorBox error={error} what="the doctor findings" />
      {data && sorted.length === 0 ? <p class="ok-text">No findings: every check passed.</p> : null}
      <ul class="findings">
        {sorted.map((f, i) => (
          <li key={i} class={`finding sev-${f.severity}`}>
            <p>
              <Badge value={f.severity} /> <strong>{f.check}</strong>
              {f.subject ? <span class="muted"> — {f.subject}</span> : null}
            </p>
            <p>{f.message}</p>
            {f.fix ? (
              <p class="fix">
                <span class="fix-label">Fix:</span> <code>{f.fix}</code>
              </p>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}
