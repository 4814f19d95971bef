import { render } from 'preact';
import { App } from './app.jsx';
import './style.css';

const root = document.getElementById('app');
// index.html holds a "Loading…" line for the time before this runs.
root.textContent = '';
render(<App />, root);
