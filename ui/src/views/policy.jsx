// Policy as TOML: view, edit, plan (diff), apply.
import { useCallback, useEffect, useState } from 'preact/hooks';
import { get, send } from '../api.js';
import { ConfirmDialog, DataTable, ErrorBox, Loading, OneTimeSecret } from '../ui.jsx';

const TOML = 'application/toml';

export function Policy() {
  const [text, setText] = useState('');
  const [loaded, setLoaded] = useState(null);
  const [loadErr, setLoadErr] = useState(null);
  const [plan, setPlan] = useState(null);
  const [applied, setApplied] = useState(null);
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [prune, setPrune] = useState(false);
  const close = useCallback(() => setConfirming(false), []);

  const load = () => {
    setLoadErr(null);
    get('policy', { text: true }).then(
      (t) => {
        setText(t);
        setLoaded(t);
        setPlan(null);
      },
      (e) => {
        setLoadErr(e);
        setLoaded('');
      },
    );
  };
  useEffect(load, []);

  const run = async (op) => {
    setBusy(true);
    setErr(null);
    try {
      const path = op === 'apply' && prune ? 'policy/apply?prune=true' : `policy/${op}`;
      const r = await send('POST', path, text, { contentType: TOML });
      if (op === 'plan') {
        setPlan(r);
        setApplied(null);
      } else {
        setApplied(r);
        setPlan(null);
        setConfirming(false);
        load();
      }
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };

  const edited = loaded !== null && text !== loaded;
  const changes = (plan && plan.changes) || [];
  return (
    <>
      <h1>Policy</h1>
      <p class="muted">
        The whole policy (APIs, groups, clients, roles…) as TOML. Edit it, see the plan, then apply it.
      </p>
      <ErrorBox error={loadErr} what="the policy" />
      {loaded === null ? <Loading what="the policy" /> : null}
      <div class="field">
        <label for="policy-toml">Policy (TOML){edited ? ' — edited, not applied' : ''}</label>
        <textarea
          id="policy-toml"
          class="code-edit"
          rows={Math.min(40, Math.max(10, text.split('\n').length + 2))}
          spellcheck={false}
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </div>
      <div class="actions left">
        <button type="button" class="primary" disabled={busy} onClick={() => run('plan')}>
          Plan
        </button>
        <button type="button" class="danger" disabled={busy || !plan} onClick={() => setConfirming(true)}>
          Apply…
        </button>
        <button type="button" class="secondary" disabled={busy || !edited} onClick={load}>
          Discard edits
        </button>
      </div>
      <ErrorBox error={confirming ? null : err} />
      <div aria-live="polite">
        {applied ? <p class="ok-text">Applied {(applied.changes || []).length} change(s).</p> : null}
      </div>
      {applied
        ? [...(applied.created_clients || []), ...(applied.created_api_keys || [])].map((c, i) => (
            <OneTimeSecret key={i} result={c} onDismiss={() => setApplied({ ...applied, created_clients: [], created_api_keys: [] })} />
          ))
        : null}
      {plan ? (
        <section aria-labelledby="h-plan">
          <h2 id="h-plan">Plan: {changes.length} change(s)</h2>
          <DataTable
            rows={changes}
            empty="No change: the broker already has this policy."
            columns={[
              ['op', 'Operation'],
              ['kind', 'Kind'],
              ['name', 'Name'],
              ['detail', 'Detail'],
            ]}
          />
          {plan.needs_prune && plan.needs_prune.length ? (
            <div class="field check">
              <input id="policy-prune" type="checkbox" checked={prune} onChange={(e) => setPrune(e.currentTarget.checked)} />
              <label for="policy-prune">
                Also remove what the TOML no longer names: {plan.needs_prune.join(', ')}
              </label>
            </div>
          ) : null}
          {plan.diff ? (
            <pre class="diff" aria-label="Diff">
              {plan.diff.split('\n').map((l, i) => (
                <span
                  key={i}
                  class={l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : l.startsWith('~') ? 'chg' : l.startsWith('!') ? 'warn' : ''}
                >
                  {l}
                  {'\n'}
                </span>
              ))}
            </pre>
          ) : null}
        </section>
      ) : null}
      <ConfirmDialog
        open={confirming}
        title="Apply this policy?"
        confirmLabel="Apply"
        danger
        busy={busy}
        onConfirm={() => run('apply')}
        onClose={close}
      >
        <p>
          {changes.length} change(s) take effect at once on every instance
          {prune ? ', including the removals' : ''}.
        </p>
        <ErrorBox error={confirming ? err : null} />
      </ConfirmDialog>
    </>
  );
}
