// Placeholder of the console front end (ui/ builds the real one into ui-dist/).
const app = document.getElementById('app');
fetch('/ui/session', { credentials: 'same-origin' })
  .then((r) => r.json())
  .then((s) => { app.textContent = `Signed in as ${s.actor} (${s.scopes.join(' ')})`; })
  .catch(() => { app.textContent = 'Not signed in.'; });
