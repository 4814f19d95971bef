// APIs, groups, clients, roles, API keys and signing keys: lists from the
// admin API, with the create / rotate / delete actions it offers.
import { useCallback, useRef, useState } from 'preact/hooks';
import { send } from '../api.js';
import { Badge, ConfirmDialog, DataTable, ErrorBox, Loading, OneTimeSecret, itemsOf, parseGrants, useData } from '../ui.jsx';

function ListSection({ path, what, columns, children, rowKey, reloadRef }) {
  const { data, error, loading, reload } = useData(path);
  if (reloadRef) reloadRef.current = reload;
  return (
    <section aria-labelledby={`h-list-${what}`}>
      <h2 id={`h-list-${what}`} class="visually-hidden">
        All {what}
      </h2>
      <ErrorBox error={error} what={what} />
      {loading && !data ? <Loading what={what} /> : null}
      {data ? <DataTable rows={itemsOf(data)} columns={columns ? columns(reload) : undefined} rowKey={rowKey} /> : null}
      {children ? children(reload) : null}
    </section>
  );
}

/** A create form inside <details>; fields = [{name, label, type, required, hint, options}] */
function CreateForm({ title, fields, onSubmit, reload, showsSecret }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    setBusy(true);
    setError(null);
    try {
      const r = await onSubmit(new FormData(form));
      form.reset();
      if (showsSecret) setResult(r);
      reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <OneTimeSecret result={result} onDismiss={() => setResult(null)} />
      <details class="create">
        <summary>{title}</summary>
        <form onSubmit={submit}>
          {fields.map((f) => (
            <div class="field" key={f.name}>
              <label for={`f-${f.name}`}>{f.label}</label>
              {f.type === 'textarea' ? (
                <textarea id={`f-${f.name}`} name={f.name} rows={3} required={f.required} aria-describedby={f.hint ? `f-${f.name}-hint` : undefined} />
              ) : f.options ? (
                <select id={`f-${f.name}`} name={f.name}>
                  {f.options.map((o) => (
                    <option key={o}>{o}</option>
                  ))}
                </select>
              ) : (
                <input
                  id={`f-${f.name}`}
                  name={f.name}
                  type={f.type || 'text'}
                  required={f.required}
                  autocomplete="off"
                  aria-describedby={f.hint ? `f-${f.name}-hint` : undefined}
                />
              )}
              {f.hint ? (
                <p class="hint" id={`f-${f.name}-hint`}>
                  {f.hint}
                </p>
              ) : null}
            </div>
          ))}
          <ErrorBox error={error} />
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Working…' : 'Create'}
          </button>
        </form>
      </details>
    </>
  );
}

const grantsHint = 'One grant per line: the API, then its scopes ("https://api.example.com read write").';
const str = (fd, k) => String(fd.get(k) || '').trim();

export function Apis() {
  return (
    <>
      <h1>APIs</h1>
      <ListSection path="apis" what="APIs" rowKey={(r) => r.id}>
        {(reload) => (
          <CreateForm
            title="New API"
            reload={reload}
            fields={[
              { name: 'id', label: 'Identifier (audience)', required: true },
              { name: 'scopes', label: 'Scopes (space separated)', required: true },
              { name: 'ttl_secs', label: 'Token lifetime (seconds)', type: 'number' },
              { name: 'format', label: 'Token format', options: ['cwt', 'jwt'] },
            ]}
            onSubmit={(fd) => {
              const body = { id: str(fd, 'id'), scopes: str(fd, 'scopes'), format: str(fd, 'format') };
              if (str(fd, 'ttl_secs')) body.ttl_secs = Number(str(fd, 'ttl_secs'));
              return send('POST', 'apis', body);
            }}
          />
        )}
      </ListSection>
    </>
  );
}

export function Groups() {
  return (
    <>
      <h1>Groups</h1>
      <ListSection path="groups" what="groups" rowKey={(r) => r.name}>
        {(reload) => (
          <CreateForm
            title="New group"
            reload={reload}
            fields={[
              { name: 'name', label: 'Name', required: true },
              { name: 'grants', label: 'Grants', type: 'textarea', hint: grantsHint },
            ]}
            onSubmit={(fd) => send('POST', 'groups', { name: str(fd, 'name'), grants: parseGrants(str(fd, 'grants')) })}
          />
        )}
      </ListSection>
    </>
  );
}

export function Clients() {
  const [target, setTarget] = useState(null); // {op, id}
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);
  const reloadRef = useRef(() => {});
  const close = useCallback(() => setTarget(null), []);
  const act = async () => {
    setBusy(true);
    setError(null);
    try {
      const id = encodeURIComponent(target.id);
      if (target.op === 'rotate') setSecret(await send('POST', `clients/${id}/rotate-secret`));
      else await send('DELETE', `clients/${id}`);
      setTarget(null);
      reloadRef.current();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>Clients</h1>
      <OneTimeSecret result={secret} onDismiss={() => setSecret(null)} />
      <ListSection
        path="clients"
        what="clients"
        rowKey={(r) => r.client_id || r.id}
        reloadRef={reloadRef}
        columns={() => [
            ['client_id', 'Client id', (v, r) => <code>{v || r.id}</code>],
            ['name', 'Name'],
            ['auth_method', 'Authentication', (v, r) => v || r.method || '—'],
            ['grants', 'Grants'],
            ['roles', 'Roles'],
            [
              'actions',
              'Actions',
              (_, r) => (
                <span class="row-actions">
                  {r.has_secret !== false ? (
                    <button type="button" class="secondary small" onClick={() => setTarget({ op: 'rotate', id: r.client_id || r.id })}>
                      Rotate secret…
                    </button>
                  ) : null}
                  <button type="button" class="danger small" onClick={() => setTarget({ op: 'delete', id: r.client_id || r.id })}>
                    Delete…
                  </button>
                </span>
              ),
            ],
          ]}
      >
        {(rl) => (
          <CreateForm
            title="New client"
            reload={rl}
            showsSecret
            fields={[
              { name: 'name', label: 'Name', required: true },
              { name: 'grants', label: 'Grants', type: 'textarea', hint: grantsHint },
              { name: 'tls_subject', label: 'TLS subject DN (optional; without it a secret is generated)' },
            ]}
            onSubmit={(fd) => {
              const body = { name: str(fd, 'name'), grants: parseGrants(str(fd, 'grants')) };
              if (str(fd, 'tls_subject')) body.tls_subject = str(fd, 'tls_subject');
              return send('POST', 'clients', body);
            }}
          />
        )}
      </ListSection>
      <ConfirmDialog
        open={!!target}
        title={target ? `${target.op === 'rotate' ? 'Rotate the secret of' : 'Delete'} client ${target.id}?` : ''}
        confirmLabel={target && target.op === 'rotate' ? 'Rotate secret' : 'Delete'}
        danger={target && target.op === 'delete'}
        busy={busy}
        onConfirm={act}
        onClose={close}
      >
        <p>
          {target && target.op === 'rotate'
            ? 'The old secret stops working; the new one is shown once.'
            : 'The client can no longer get tokens.'}
        </p>
        <ErrorBox error={target ? error : null} />
      </ConfirmDialog>
    </>
  );
}

export function Roles() {
  return (
    <>
      <h1>Roles</h1>
      <ListSection
        path="roles"
        what="roles"
        rowKey={(r) => r.name}
        columns={() => [
          ['name', 'Name'],
          ['description', 'Description'],
          ['grants', 'Grants'],
          ['clients', 'Clients'],
          ['groups', 'Groups'],
          ['api_keys', 'API keys'],
          ['created_at', 'Created'],
        ]}
      >
        {(reload) => (
          <CreateForm
            title="New role"
            reload={reload}
            fields={[
              { name: 'name', label: 'Name', required: true },
              { name: 'description', label: 'Description' },
              { name: 'grants', label: 'Grants', type: 'textarea', hint: grantsHint },
            ]}
            onSubmit={(fd) =>
              send('POST', 'roles', {
                name: str(fd, 'name'),
                description: str(fd, 'description'),
                grants: parseGrants(str(fd, 'grants')),
              })
            }
          />
        )}
      </ListSection>
    </>
  );
}

export function ApiKeys() {
  const [target, setTarget] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const reloadRef = useRef(() => {});
  const close = useCallback(() => setTarget(null), []);
  const revoke = async () => {
    setBusy(true);
    setError(null);
    try {
      await send('DELETE', `api-keys/${encodeURIComponent(target)}`);
      setTarget(null);
      reloadRef.current();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>API keys</h1>
      <ListSection
        path="api-keys"
        what="API keys"
        rowKey={(r) => r.name}
        reloadRef={reloadRef}
        columns={() => [
          ['name', 'Name'],
          ['state', 'State', (v) => <Badge value={v} />],
          ['grants', 'Grants'],
          ['created_at', 'Created'],
          ['expires_at', 'Expires'],
          ['last_used_at', 'Last used'],
          [
            'actions',
            'Actions',
            (_, r) =>
              r.state === 'active' || r.state === undefined ? (
                <button type="button" class="danger small" onClick={() => setTarget(r.name)}>
                  Revoke…
                </button>
              ) : null,
          ],
        ]}
      >
        {(reload) => (
          <CreateForm
            title="New API key"
            reload={reload}
            showsSecret
            fields={[
              { name: 'name', label: 'Name', required: true },
              { name: 'grants', label: 'Grants', type: 'textarea', required: true, hint: grantsHint },
              { name: 'expires_in_secs', label: 'Expires in (seconds, optional)', type: 'number' },
            ]}
            onSubmit={(fd) => {
              const body = { name: str(fd, 'name'), grants: parseGrants(str(fd, 'grants')) };
              if (str(fd, 'expires_in_secs')) body.expires_in_secs = Number(str(fd, 'expires_in_secs'));
              return send('POST', 'api-keys', body);
            }}
          />
        )}
      </ListSection>
      <ConfirmDialog
        open={!!target}
        title={`Revoke API key ${target || ''}?`}
        confirmLabel="Revoke"
        danger
        busy={busy}
        onConfirm={revoke}
        onClose={close}
      >
        <p>The key can no longer be exchanged for tokens.</p>
        <ErrorBox error={target ? error : null} />
      </ConfirmDialog>
    </>
  );
}

export function Keys() {
  const { data, error, loading, reload } = useData('keys');
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [actErr, setActErr] = useState(null);
  const [notice, setNotice] = useState('');
  const close = useCallback(() => setOpen(false), []);
  const rotate = async (fd) => {
    setBusy(true);
    setActErr(null);
    try {
      const grace = Number(String(fd.get('grace_secs') || '300'));
      await send('POST', 'keys/rotate', { grace_secs: grace });
      setNotice('Signing keys rotated.');
      setOpen(false);
      reload();
    } catch (e) {
      setActErr(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <div class="page-head">
        <h1>Signing keys</h1>
        <button type="button" class="primary" onClick={() => setOpen(true)}>
          Rotate keys…
        </button>
      </div>
      <p role="status" aria-live="polite" class="notice">
        {notice}
      </p>
      <ErrorBox error={error} what="keys" />
      {loading && !data ? <Loading what="keys" /> : null}
      {data ? <DataTable rows={itemsOf(data)} /> : null}
      <ConfirmDialog open={open} title="Rotate the signing keys?" confirmLabel="Rotate" busy={busy} onConfirm={rotate} onClose={close}>
        <p>New tokens are signed with a new key; the old key stays published for the grace period.</p>
        <div class="field">
          <label for="grace">Grace period (seconds)</label>
          <input id="grace" name="grace_secs" type="number" min="0" value="300" data-autofocus />
        </div>
        <ErrorBox error={open ? actErr : null} />
      </ConfirmDialog>
    </>
  );
}
