// A tiny path router for the single-page app under /ui/.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/ui';

const listeners = new Set();

export function navigate(to, { replace = false } = {}) {
  const url = to.startsWith(BASE) ? to : `${BASE}${to}`;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  listeners.forEach((f) => f());
}

window.addEventListener('popstate', () => listeners.forEach((f) => f()));

/** The current path below /ui (always starting with "/") and its query. */
export function useLocation() {
  const read = () => {
    let path = window.location.pathname;
    if (path.startsWith(BASE)) path = path.slice(BASE.length);
    if (!path.startsWith('/')) path = `/${path}`;
    return { path, search: window.location.search };
  };
  const [loc, setLoc] = useState(read);
  useEffect(() => {
    const f = () => setLoc(read());
    listeners.add(f);
    return () => listeners.delete(f);
  }, []);
  return loc;
}

/** An <a> that navigates without reloading (ctrl/middle click still open a tab). */
export function Link({ href, children, ...rest }) {
  const full = `${BASE}${href}`;
  const onClick = (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) {
      return;
    }
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={full} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}
