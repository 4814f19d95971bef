// Browser test of the certbound console against a running broker, driving
// Debian's Chromium through playwright-core (no browser is ever downloaded).
//
// Environment:
//   CERTBOUND_UI_BASE           https://127.0.0.1:PORT of `certbound serve`
//   CERTBOUND_UI_LINK           a one-time sign-in link (`certbound ui-login --json`)
//   CERTBOUND_UI_DEVICE         the device to search for and revoke
//   CERTBOUND_UI_CLIENT_ID      admin client id (form sign-in; optional)
//   CERTBOUND_UI_CLIENT_SECRET  its secret
//   CERTBOUND_UI_OUT            where the screenshots go (PNG)
//   CERTBOUND_CHROMIUM          the browser (default /usr/bin/chromium)
//
// Exits non-zero with a message on the first failed check.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) {
    console.error(`console.mjs: ${k} is not set`);
    process.exit(2);
  }
  return v;
};
const BASE = env('CERTBOUND_UI_BASE').replace(/\/+$/, '');
const LINK = env('CERTBOUND_UI_LINK');
const DEVICE = env('CERTBOUND_UI_DEVICE');
const OUT = env('CERTBOUND_UI_OUT');
const CLIENT_ID = process.env.CERTBOUND_UI_CLIENT_ID;
const CLIENT_SECRET = process.env.CERTBOUND_UI_CLIENT_SECRET;
const EXE = env('CERTBOUND_CHROMIUM', '/usr/bin/chromium');
// The broker holds at least this many devices, some expiring within 90 days.
const MIN_DEVICES = Number(env('CERTBOUND_UI_MIN_DEVICES', '2000'));
// Before the dashboard's screenshot, wait until tokens were issued in this
// many distinct minutes (a picture with more than one minute of lines).
const SETTLE_MINUTES = Number(env('CERTBOUND_UI_SETTLE_MINUTES', '0'));
// Generous: a busy 2-core machine.
const WAIT = 120_000;

mkdirSync(OUT, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const browser = await chromium.launch({
  executablePath: EXE,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--font-render-hinting=none',
  ],
});

const problems = [];
async function newPage() {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  // CSP violations and script errors fail the run.
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to (apply|execute|load)/i.test(t)) problems.push(`CSP: ${t}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page };
}

async function shot(page, name, fullPage = true) {
  // The top of the page, fonts loaded; then a PNG.
  await page.evaluate(() => {
    if (!document.activeElement?.closest('dialog')) document.activeElement?.blur();
    window.scrollTo(0, 0);
    return document.fonts.ready;
  });
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage, animations: 'disabled' });
  console.log(`screenshot ${join(OUT, `${name}.png`)}`);
}

async function tabUntil(page, predicate, what, max = 60) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(predicate)) return i + 1;
  }
  throw new Error(`check failed: Tab never reached ${what} (${max} presses)`);
}

try {
  // 1. Form sign-in with the admin client's credentials.
  if (CLIENT_ID && CLIENT_SECRET) {
    const { context, page } = await newPage();
    await page.goto(`${BASE}/ui/`);
    check(new URL(page.url()).pathname === '/ui/login', 'without a session /ui/ leads to the sign-in page');
    await page.fill('[name=client_id]', CLIENT_ID);
    await page.fill('[name=client_secret]', 'not-the-secret');
    await Promise.all([page.waitForURL(/\/ui\/login\?error=/), page.press('[name=client_secret]', 'Enter')]);
    const refusal = new URL(page.url()).searchParams.get('error');
    check(refusal !== 'origin', `a wrong client secret is refused (back to the sign-in page: error=${refusal})`);
    await page.fill('[name=client_id]', CLIENT_ID);
    await page.fill('[name=client_secret]', CLIENT_SECRET);
    await Promise.all([page.waitForURL(`${BASE}/ui/`), page.press('[name=client_secret]', 'Enter')]);
    await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
    const session = await page.evaluate(() => fetch('/ui/session').then((r) => r.json()));
    check(String(session.actor).includes(CLIENT_ID), `form sign-in gives a session for the admin client (${session.actor})`);
    // Log out ends the session.
    await Promise.all([page.waitForURL(/\/ui\/login/), page.getByRole('button', { name: 'Log out' }).click()]);
    const after = await page.evaluate(() => fetch('/ui/session').then((r) => r.status));
    check(after === 401, 'after logging out /ui/session answers 401');
    await context.close();
  } else {
    console.log('# form sign-in skipped (CERTBOUND_UI_CLIENT_ID not set)');
  }

  // 2. One-time link sign-in: GET shows a Continue button, POST signs in.
  const { page } = await newPage();
  await page.goto(LINK);
  await Promise.all([
    page.waitForURL(`${BASE}/ui/`),
    page.getByRole('button', { name: /continue/i }).click(),
  ]);
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  check(true, 'the one-time link signs in');

  // 3. Dashboard: charts with the running fleet's numbers (refreshed every 5 s).
  await page.waitForFunction(
    () => {
      const total = (id) => Number(document.querySelector(`figure[data-chart="${id}"]`)?.dataset.total || 0);
      return total('tokens') > 0 && total('devices-by-status') > 0;
    },
    null,
    { timeout: WAIT, polling: 500 },
  );
  const dash = await page.evaluate(() => {
    const fig = (id) => document.querySelector(`figure[data-chart="${id}"]`);
    const lines = [...fig('tokens').querySelectorAll('svg[role=img] polyline')].map((l) => l.dataset.series);
    const rows = (id) =>
      [...fig(id).querySelectorAll('details.numbers tbody tr')].map((tr) =>
        [...tr.children].map((c) => c.textContent.trim()),
      );
    return {
      lines,
      tokenRows: rows('tokens'),
      statusRows: rows('devices-by-status'),
      statusBars: fig('devices-by-status').querySelectorAll('rect.bar').length,
      svgs: document.querySelectorAll('figure.chart svg[role=img]').length,
      titles: [...document.querySelectorAll('figure.chart svg[role=img] > title')].map((t) => t.textContent),
      expiryBars: fig('cert-expiry').querySelectorAll('rect.bar').length,
      expiring: Number(fig('cert-expiry').dataset.total),
      total: Number(document.querySelector('[data-testid=devices-total]')?.textContent),
    };
  });
  check(dash.lines.includes('coap') && dash.lines.includes('mqtt'), 'the tokens chart draws a line per transport');
  const sum = (i) => dash.tokenRows.reduce((a, r) => a + Number(r[i] || 0), 0);
  const head = ['minute', 'coap', 'mqtt', 'https', 'oauth'];
  const perTransport = Object.fromEntries(head.slice(1).map((t, i) => [t, sum(i + 1)]));
  console.log(`# tokens in the last hour by transport: ${JSON.stringify(perTransport)}`);
  check(perTransport.coap > 0, 'the tokens table counts CoAP tokens from the fleet');
  const active = dash.statusRows.find((r) => r[0] === 'active');
  check(active && Number(active[1]) >= MIN_DEVICES, `devices by status counts the active devices (${active && active[1]})`);
  check(dash.total >= MIN_DEVICES, `the device total counts at least ${MIN_DEVICES} devices (${dash.total})`);
  check(dash.expiring > 0, `the expiry chart counts certificates expiring within 90 days (${dash.expiring})`);
  check(dash.statusBars >= 3 && dash.expiryBars >= 30, 'the status and expiry charts draw their bars');
  check(dash.svgs >= 3 && dash.titles.length === dash.svgs, `every chart SVG has a <title> (${dash.titles.length} of ${dash.svgs})`);

  // 4. Devices: the search box among thousands, reached by keyboard.
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Devices' }).click();
  await page.getByRole('heading', { level: 1, name: 'Devices' }).waitFor();
  await page.waitForFunction(() => /matching device/.test(document.querySelector('[data-testid=device-count]')?.textContent || ''));
  const firstPage = await page.locator('table.devices tbody tr').count();
  check(firstPage === 50, `the first page lists 50 devices (${firstPage})`);
  const nextBtn = page.getByRole('button', { name: /Next/ });
  await nextBtn.click();
  await page.waitForFunction(() => /showing 51–/.test(document.querySelector('[data-testid=device-count]')?.textContent || ''));
  check(true, 'Next shows the second page');
  await page.getByRole('button', { name: /Previous/ }).click();
  await page.waitForFunction(() => /showing 1–50/.test(document.querySelector('[data-testid=device-count]')?.textContent || ''));
  await shot(page, 'devices', false);

  // Keyboard: on a fresh load of the page, the first Tab stop is the skip
  // link; more Tabs reach the search box.
  await page.goto(`${BASE}/ui/devices`);
  await page.getByRole('heading', { level: 1, name: 'Devices' }).waitFor();
  await page.keyboard.press('Tab');
  const skip = await page.evaluate(() => document.activeElement?.textContent);
  check(skip === 'Skip to content', 'the first Tab stop is the skip link');
  const presses = await tabUntil(page, () => document.activeElement?.id === 'device-search', 'the search box');
  check(true, `Tab reaches the search box (${presses} more presses)`);
  await page.keyboard.type(DEVICE);
  await page.keyboard.press('Enter');
  const link = page.locator('table.devices tbody a', { hasText: DEVICE });
  await link.first().waitFor();
  await page.waitForFunction(
    (d) => {
      const rows = [...document.querySelectorAll('table.devices tbody tr')];
      return rows.length >= 1 && rows.length <= 20 && rows.every((r) => r.textContent.includes(d));
    },
    DEVICE,
  );
  const count = await page.locator('[data-testid=device-count]').textContent();
  check(true, `searching "${DEVICE}" narrows thousands to: ${count}`);

  // 5. Device detail: open it from the keyboard.
  await link.first().focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: new RegExp(`Device ${DEVICE}`) }).waitFor();
  await page.locator('[data-testid=device-status] .badge', { hasText: 'active' }).waitFor();
  const certs = await page.locator('section:has(#h-certs) tbody tr').count();
  check(certs >= 1, `the device page lists its certificate(s) (${certs})`);
  await shot(page, 'device');

  // The revoke button by Tab; the dialog opens by keyboard, Escape closes it
  // and gives focus back to the button.
  await page.evaluate(() => document.querySelector('main h1')?.focus());
  await tabUntil(page, () => document.activeElement?.textContent === 'Revoke…', 'the revoke button');
  check(true, 'Tab reaches the revoke button');
  await page.keyboard.press('Enter');
  const dialog = page.locator('dialog[open]');
  await dialog.waitFor();
  check(
    await page.evaluate(() => document.querySelector('dialog[open]')?.contains(document.activeElement)),
    'the confirmation dialog opens with the focus inside it',
  );
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('dialog[open]'));
  check(
    await page.evaluate(() => document.activeElement?.textContent === 'Revoke…'),
    'Escape closes the dialog and the focus returns to the revoke button',
  );
  let status = await page.locator('[data-testid=device-status]').textContent();
  check(status.trim() === 'active', 'cancelling changes nothing');

  // Revoke for real, by keyboard: reason, Tab to Cancel, Tab to Revoke, Enter.
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.type('lost in the field (console e2e)');
  await shot(page, 'revoke-dialog', false);
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  check(
    await page.evaluate(
      () => document.activeElement?.closest('dialog') && document.activeElement.textContent === 'Revoke',
    ),
    'Tab moves within the dialog to its Revoke button',
  );
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=device-status] .badge', { hasText: 'revoked' }).waitFor();
  status = await page.locator('[data-testid=device-status]').textContent();
  check(status.trim() === 'revoked', 'the device page shows the device revoked');
  await page.locator('section:has(#h-audit) td', { hasText: 'revoke' }).first().waitFor().catch(() => {});

  // 6. Audit: history and the live stream.
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit' }).waitFor();
  await page.locator('table.audit tbody tr').first().waitFor();
  await page.waitForFunction(() => /^\s*Live\s*$/.test(document.querySelector('.live')?.textContent || ''));
  check(true, 'the audit stream is live');
  // A new event (the fleet keeps getting tokens) arrives over SSE.
  const newest = await page.locator('table.audit tbody tr').first().textContent();
  await page.waitForFunction((old) => document.querySelector('table.audit tbody tr')?.textContent !== old, newest);
  check(true, 'a new audit event arrives over the live stream');
  await page.fill('#a-device', DEVICE);
  await page.press('#a-device', 'Enter');
  await page.waitForFunction(
    (d) => {
      const rows = [...document.querySelectorAll('table.audit tbody tr')];
      return rows.length > 0 && rows.every((r) => r.textContent.includes(d));
    },
    DEVICE,
  );
  check(true, `filtering the audit by device shows only ${DEVICE}'s events`);
  await page.fill('#a-device', '');
  await page.press('#a-device', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('table.audit tbody tr').length > 5);
  await page.waitForFunction(() => /^\s*Live\s*$/.test(document.querySelector('.live')?.textContent || ''));
  await shot(page, 'audit', false);

  // 6b. Clients: a new client's secret is shown once, and it is listed.
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Clients' }).click();
  await page.getByRole('heading', { level: 1, name: 'Clients' }).waitFor();
  await page.locator('details.create summary').click();
  await page.fill('#f-name', 'console-e2e');
  const api = await page.evaluate(() => fetch('/admin/v1/apis').then((r) => r.json()).then((a) => a[0].id));
  await page.fill('#f-grants', `${api} read`);
  await page.getByRole('button', { name: 'Create' }).click();
  const secret = await page.locator('.secret .secret-value').first().textContent();
  check(secret && secret.length >= 20, 'creating a client shows its secret once');
  await page.locator('table tbody tr', { hasText: 'console-e2e' }).first().waitFor();
  await page.getByRole('button', { name: 'I have stored it' }).click();
  check((await page.locator('.secret').count()) === 0, 'the secret is gone once dismissed');

  // 7. Policy (its routes may not exist on this broker: then its message shows).
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Policy' }).click();
  await page.getByRole('heading', { level: 1, name: 'Policy' }).waitFor();
  await page.waitForFunction(
    () => document.querySelector('#policy-toml')?.value.length > 0 || document.querySelector('main .error'),
  );
  const policyError = await page.locator('main .error').count();
  if (policyError === 0) {
    // An edit (a shorter token lifetime of the first API), then its plan.
    const toml = await page.locator('#policy-toml').inputValue();
    const edited = toml.replace(/ttl_secs = (\d+)/, (_, n) => `ttl_secs = ${Math.max(60, Math.floor(Number(n) / 2))}`);
    check(edited !== toml, 'the policy TOML names a token lifetime to edit');
    await page.fill('#policy-toml', edited);
    await page.getByRole('button', { name: 'Plan' }).click();
    await page.locator('#h-plan').waitFor();
    const planned = await page.locator('#h-plan').textContent();
    check(/Plan: 1 change/.test(planned), `planning the edit shows one change (${planned})`);
    const diff = await page.locator('pre.diff').textContent();
    check(/^~ .*ttl/m.test(diff), `the plan shows the change as certbound plan prints it (${diff.split('\n')[0]})`);
  }
  console.log(`# policy view: ${policyError ? 'the broker has no policy routes (message shown)' : 'TOML loaded, edited and planned'}`);
  await shot(page, 'policy');

  // 8. The dashboard again, for its picture: the revoked device counted,
  // the doctor's findings loaded.
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Dashboard' }).click();
  await page.waitForFunction(
    () => Number(document.querySelector('figure[data-chart="devices-by-status"]')?.dataset.total || 0) > 0,
  );
  const revokedRow = await page
    .locator('figure[data-chart="devices-by-status"] details.numbers tbody tr', { hasText: 'revoked' })
    .textContent();
  check(/revoked\s*[1-9]/.test(revokedRow), `devices by status counts the revoked device (${revokedRow})`);
  if (SETTLE_MINUTES > 0) console.log(`# waiting for tokens in ${SETTLE_MINUTES} distinct minutes`);
  await page.waitForFunction(
    (n) => document.querySelectorAll('figure[data-chart="tokens"] details.numbers tbody tr').length >= n,
    SETTLE_MINUTES,
    { timeout: (SETTLE_MINUTES + 2) * 60_000, polling: 1000 },
  );
  await page.waitForFunction(() => /Check again/.test(document.querySelector('.doctor .page-head button')?.textContent || ''));
  await shot(page, 'dashboard');

  check(problems.length === 0, `no CSP violation or script error${problems.length ? `: ${problems.join('; ')}` : ''}`);
  console.log('console.mjs: all checks passed');
} catch (e) {
  console.error(`console.mjs: ${e.stack || e}`);
  // What the page showed when it failed.
  for (const ctx of browser.contexts()) {
    for (const [i, p] of ctx.pages().entries()) {
      await p.screenshot({ path: join(OUT, `failure-${i}.png`), fullPage: true }).catch(() => {});
      console.error(`page ${p.url()} at failure: ${join(OUT, `failure-${i}.png`)}`);
    }
  }
  if (problems.length) console.error(`also seen: ${problems.join('; ')}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
