// One device: certificates, groups, effective scopes, recent audit; and
// suspend / resume / revoke behind a confirmation dialog.
import { useCallback, useState } from 'preact/hooks';
import { send } from '../api.js';
import { Link } from '../router.jsx';
import { Badge, ConfirmDialog, DataTable, ErrorBox, Loading, fmtAgo, fmtTime, useData } from '../ui.jsx';

const ACTIONS = {
  suspend: { label: 'Suspend', verb: 'suspended', danger: false, text: 'The device gets no tokens until it is resumed.' },
  resume: { label: 'Resume', verb: 'resumed', danger: false, text: 'The device may get tokens again.' },
  revoke: {
    label: 'Revoke',
    verb: 'revoked',
    danger: true,
    text: 'Revoking is permanent: the device is refused at once on every transport, and its certificate is revoked.',
  },
};

export function Device({ id }) {
  const { data, error, loading, reload } = useData(`devices/${encodeURIComponent(id)}`, [id]);
  const [action, setAction] = useState(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState(null);
  const [notice, setNotice] = useState('');
  const close = useCallback(() => setAction(null), []);

  const device = data ? data.device || data : null;
  const status = device && device.status;

  const confirm = async (form) => {
    setBusy(true);
    setActionError(null);
    const reason = String(form.get('reason') || '').trim();
    try {
      await send('POST', `devices/${encodeURIComponent(id)}/${action}`, reason ? { reason } : {});
      setNotice(`Device ${id} ${ACTIONS[action].verb}.`);
      setAction(null);
      reload();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <p class="crumbs">
        <Link href="/devices">← Devices</Link>
      </p>
      <h1>
        Device <code>{id}</code>
      </h1>
      <ErrorBox error={error} what="this device" />
      {loading && !data ? <Loading what="the device" /> : null}
      <p role="status" aria-live="polite" class="notice">
        {notice}
      </p>
      <ErrorBox error={actionError && !action ? actionError : null} />
      {device ? (
        <>
          <dl class="facts">
            <div>
              <dt>Status</dt>
              <dd data-testid="device-status">
                <Badge value={status} />
              </dd>
            </div>
            <div>
              <dt>Last seen</dt>
              <dd>
                {fmtAgo(data.last_seen)}
                {data.last_seen ? <span class="muted"> ({fmtTime(data.last_seen)})</span> : null}
              </dd>
            </div>
            <div>
              <dt>Last transport</dt>
              <dd>{data.last_transport || '—'}</dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>{fmtTime(device.created_at)}</dd>
            </div>
            <div>
              <dt>Groups</dt>
              <dd>{(data.groups || device.groups || []).join(', ') || '—'}</dd>
            </div>
          </dl>
          <div class="actions left" role="group" aria-label="Device actions">
            {status === 'active' ? (
              <button type="button" class="secondary" onClick={() => setAction('suspend')}>
                Suspend…
              </button>
            ) : null}
            {status === 'suspended' ? (
              <button type="button" class="secondary" onClick={() => setAction('resume')}>
                Resume…
              </button>
            ) : null}
            {status !== 'revoked' ? (
              <button type="button" class="danger" onClick={() => setAction('revoke')}>
                Revoke…
              </button>
            ) : null}
          </div>

          <section aria-labelledby="h-certs">
            <h2 id="h-certs">Certificates</h2>
            <DataTable
              rows={data.certificates || []}
              empty="No certificate."
              columns={[
                ['serial', 'Serial', (v) => <code>{v}</code>],
                ['thumbprint', 'Thumbprint', (v) => <code class="wrap">{v || '—'}</code>],
                ['not_before', 'Valid from', (v) => fmtTime(v)],
                ['not_after', 'Valid until', (v) => fmtTime(v)],
                ['status', 'Status', (v) => (v ? <Badge value={v} /> : '—')],
              ]}
            />
          </section>
          <section aria-labelledby="h-scopes">
            <h2 id="h-scopes">Effective scopes</h2>
            <DataTable
              rows={data.effective_scopes || []}
              empty="No scopes (or this broker does not report them yet)."
              columns={[
                ['api', 'API'],
                ['scopes', 'Scopes', (v) => (Array.isArray(v) ? v.join(' ') : v)],
              ]}
            />
          </section>
          {data.attributes && Object.keys(data.attributes).length ? (
            <section aria-labelledby="h-attrs">
              <h2 id="h-attrs">Attributes</h2>
              <DataTable
                rows={Object.entries(data.attributes).map(([name, value]) => ({ name, value }))}
                columns={[
                  ['name', 'Name'],
                  ['value', 'Value', (v) => String(v)],
                ]}
              />
            </section>
          ) : null}
          <section aria-labelledby="h-audit">
            <h2 id="h-audit">Recent audit</h2>
            <DataTable
              rows={data.recent_audit || []}
              empty="No recent audit events (or this broker does not report them yet)."
              columns={[
                ['ts_ms', 'Time', (v, r) => fmtTime(v ?? r.ts, v !== undefined), 'nowrap'],
                ['actor', 'Actor'],
                ['action', 'Action'],
                ['outcome', 'Outcome', (v) => <Badge value={v} outcome />],
                ['detail', 'Detail', undefined, 'detail'],
              ]}
            />
          </section>
        </>
      ) : null}
      <ConfirmDialog
        open={!!action}
        title={action ? `${ACTIONS[action].label} device ${id}?` : ''}
        confirmLabel={action ? ACTIONS[action].label : ''}
        danger={action ? ACTIONS[action].danger : false}
        busy={busy}
        onConfirm={confirm}
        onClose={close}
      >
        {action ? <p>{ACTIONS[action].text}</p> : null}
        <div class="field">
          <label for="action-reason">Reason (recorded in the audit log)</label>
          <input id="action-reason" name="reason" type="text" autocomplete="off" data-autofocus />
        </div>
        <ErrorBox error={action ? actionError : null} />
      </ConfirmDialog>
    </>
  );
}
