// The console shell: skip link, navigation, session, routing.
import { useEffect, useRef, useState } from 'preact/hooks';
import { loadSession, logout, onSessionLost } from './api.js';
import { Link, useLocation } from './router.jsx';
import { ErrorBox } from './ui.jsx';
import { Audit } from './views/audit.jsx';
import { Dashboard } from './views/dashboard.jsx';
import { Device } from './views/device.jsx';
import { Devices } from './views/devices.jsx';
import { Policy } from './views/policy.jsx';
import { ApiKeys, Apis, Clients, Groups, Keys, Roles } from './views/resources.jsx';

const NAV = [
  ['/', 'Dashboard'],
  ['/devices', 'Devices'],
  ['/apis', 'APIs'],
  ['/groups', 'Groups'],
  ['/clients', 'Clients'],
  ['/roles', 'Roles'],
  ['/api-keys', 'API keys'],
  ['/keys', 'Keys'],
  ['/policy', 'Policy'],
  ['/audit', 'Audit'],
];

function route(path) {
  const m = path.match(/^\/devices\/(.+)$/);
  if (m) return { title: 'Device', view: <Device id={decodeURIComponent(m[1])} key={m[1]} />, nav: '/devices' };
  const views = {
    '/': Dashboard,
    '/devices': Devices,
    '/apis': Apis,
    '/groups': Groups,
    '/clients': Clients,
    '/roles': Roles,
    '/api-keys': ApiKeys,
    '/keys': Keys,
    '/policy': Policy,
    '/audit': Audit,
  };
  const p = path.replace(/\/+$/, '') || '/';
  const View = views[p];
  const entry = NAV.find(([href]) => href === p);
  if (!View) return { title: 'Not found', view: <NotFound />, nav: null };
  return { title: entry[1], view: <View />, nav: p };
}

function NotFound() {
  return (
    <>
      <h1>Not found</h1>
      <p>
        There is no such page. <Link href="/">Back to the dashboard</Link>.
      </p>
    </>
  );
}

export function App() {
  const [session, setSession] = useState(null);
  const [error, setError] = useState(null);
  const [lost, setLost] = useState(false);
  const { path } = useLocation();
  const main = useRef(null);
  const first = useRef(true);

  useEffect(() => {
    loadSession().then(setSession, (e) => {
      if (e.status === 401) window.location.assign('/ui/login');
      else setError(e);
    });
    return onSessionLost(() => setLost(true));
  }, []);

  const r = route(path);
  useEffect(() => {
    document.title = `${r.title} — certbound console`;
    // Move focus to the new page's heading (not on the first load).
    if (first.current) {
      first.current = false;
      return;
    }
    window.scrollTo(0, 0);
    const h = main.current && main.current.querySelector('h1');
    if (h) {
      h.setAttribute('tabindex', '-1');
      h.focus();
    }
  }, [path]);

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="brand">
          <svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M12 2 3 6v6c0 5 3.8 9.4 9 10 5.2-.6 9-5 9-10V6z" class="brand-shield" />
            <path d="m8 12 3 3 5-6" class="brand-check" fill="none" />
          </svg>
          <span>certbound</span> <span class="brand-sub">console</span>
        </div>
        <div class="who">
          {session ? (
            <span class="muted" title={(session.scopes || []).join(' ')}>
              {session.actor}
            </span>
          ) : null}
          <button type="button" class="secondary small" onClick={() => logout()}>
            Log out
          </button>
        </div>
      </header>
      <div class="layout">
        <nav class="sidenav" aria-label="Console">
          <ul>
            {NAV.map(([href, label]) => (
              <li key={href}>
                <Link href={href} aria-current={r.nav === href ? 'page' : undefined}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" ref={main} tabIndex={-1}>
          {lost ? (
            <div class="error" role="alert">
              Your session has ended. <a href="/ui/login">Sign in again</a>.
            </div>
          ) : null}
          <ErrorBox error={error} what="your session" />
          {session ? r.view : error ? null : <p class="muted">Loading…</p>}
        </main>
      </div>
    </>
  );
}
