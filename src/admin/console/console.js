// tlsgate console: talks to the admin API with a session cookie (HttpOnly) and a CSRF token kept
// in memory. No data is ever inserted as HTML: every value goes through textContent.
'use strict';

const API = '/api/v1';
let csrf = null;
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function call(method, path, body) {
  const headers = { 'X-Requested-With': 'console' };
  if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { showLogin(); throw new Error('signed out'); }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  return { status: r.status, json, text };
}

function showLogin(msg) {
  if (timer) { clearInterval(timer); timer = null; }
  csrf = null;
  $('app-view').hidden = true;
  $('status').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = msg || '';
}

async function login(ev) {
  ev.preventDefault();
  const user = $('login-user').value, pw = $('login-password').value;
  $('login-submit').disabled = true;
  $('login-error').textContent = '';
  try {
    const bytes = new TextEncoder().encode(user + ':' + pw);
    let bin = '';
    bytes.forEach((b) => { bin += String.fromCharCode(b); });
    const r = await fetch(API + '/session', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Authorization': 'Basic ' + btoa(bin), 'X-Requested-With': 'console' },
    });
    const j = await r.json().catch(() => ({}));
    if (r.status === 201) {
      $('login-password').value = '';
      start(j);
    } else if (r.status === 429) {
      $('login-error').textContent = 'Too many failed attempts from this address; wait a minute.';
    } else {
      $('login-error').textContent = 'Wrong user name or password.';
    }
  } finally {
    $('login-submit').disabled = false;
  }
}

function start(session) {
  csrf = session.csrf;
  $('who').textContent = session.user;
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('status').hidden = false;
  refresh();
  if (!timer) timer = setInterval(refresh, 3000);
}

function fill(table, rows) {
  const tb = table.tBodies[0];
  tb.replaceChildren(...rows);
}

function daysCell(days) {
  const cls = days < 0 ? 'days expired' : days < 30 ? 'days soon' : 'days';
  return el('td', { class: 'num' }, el('span', { class: cls, 'data-test': 'days-left' }, days));
}

function tlsText(tls) {
  if (!tls || tls.disabled) return el('span', { class: 'tag bad' }, 'plaintext');
  const min = tls.min_version || 'TLS1.3', max = tls.max_version || 'TLS1.3';
  return el('span', {}, el('span', { class: 'tag ok' }, min === max ? min : min + ' – ' + max),
    ...(tls.certificates || []).map((c) => el('span', { class: 'tag' }, c)));
}

function renderConfig(cfg) {
  const ls = (cfg.listeners || []).slice();
  if (cfg.admin) ls.push(Object.assign({ name: 'admin', mode: 'admin API' }, cfg.admin));
  fill($('listeners'), ls.map((l) => {
    const ca = l.tls && l.tls.client_auth;
    const mode = ca && ca.mode && ca.mode !== 'none' ? ca.mode : 'none';
    return el('tr', {},
      el('td', {}, el('strong', {}, l.name)), el('td', { class: 'mono' }, l.address),
      el('td', {}, l.mode || 'http'), el('td', {}, tlsText(l.tls)),
      el('td', {}, el('span', { class: 'tag' + (mode === 'require' ? ' ok' : '') }, mode),
        mode !== 'none' ? ' ' + ((ca.allowed_subjects || []).length || 'any') + ' allowed' : ''),
      el('td', {}, ...(l.routes || []).map((r) =>
        el('div', { class: 'mono' }, (r.host || '*') + (r.path_prefix || '/') + ' → ' + r.backend))));
  }));
  renderAllowLists(ls);
}

function renderBackends(cfg, live) {
  const state = {};
  for (const b of live.backends) state[b.name] = b;
  const bes = Object.entries(cfg.backends || {});
  fill($('backends'), bes.map(([name, b]) => {
    const st = state[name];
    const targets = st && st.kind === 'targets' ? st.targets.map((t) => el('div', {},
      el('span', { class: 'mono' }, t.address), ' ',
      el('span', { class: 'tag ' + (t.in_rotation ? 'ok' : 'bad'), 'data-test': 'target-state' },
        t.in_rotation ? 'in rotation' : 'out (' + t.out_on_workers + '/' + live.workers + ' workers)')))
      : [el('span', { class: 'tag' }, 'built-in ' + (b.builtin || ''))];
    return el('tr', {},
      el('td', {}, el('strong', {}, name)), el('td', {}, ...targets),
      el('td', {}, b.tls ? el('span', { class: 'tag ok' }, 'TLS') : el('span', { class: 'tag' }, 'plain')),
      el('td', {}, b.builtin ? '—' : b.health ? (b.health.path ? 'GET ' + b.health.path : 'TCP') : 'passive'));
  }));
}

function renderAllowLists(ls) {
  const box = $('allow-lists');
  const withAuth = ls.filter((l) => l.tls && l.tls.client_auth && l.tls.client_auth.mode &&
    l.tls.client_auth.mode !== 'none');
  if (!withAuth.length) {
    box.replaceChildren(el('p', { class: 'muted' }, 'No listener asks for client certificates.'));
    return;
  }
  const focused = document.activeElement && document.activeElement.dataset.listener;
  const keep = {};
  box.querySelectorAll('input[data-listener]').forEach((i) => { keep[i.dataset.listener] = i.value; });
  box.replaceChildren(...withAuth.map((l) => {
    const subjects = l.tls.client_auth.allowed_subjects || [];
    const input = el('input', { placeholder: 'CN=CordaOperator,C=GB,L=London,O=Org',
      'data-listener': l.name, 'data-test': 'allow-input-' + l.name, 'aria-label': 'Subject to allow' });
    input.value = keep[l.name] || '';
    const msg = el('div', { class: 'msg muted' });
    const form = el('form', {}, input,
      el('button', { type: 'submit', 'data-test': 'allow-add-' + l.name }, 'Allow'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const s = input.value.trim();
      if (!s) return;
      const r = await call('PUT', API + '/listeners/' + encodeURIComponent(l.name) +
        '/allowed-client-certificate-subjects/' + encodeURIComponent(s));
      if (r.status === 201 || r.status === 200) {
        input.value = '';
        msg.className = 'msg';
        msg.textContent = r.status === 201 ? 'Added (config v' + r.json.version + ').' : 'Already allowed.';
        refresh();
      } else {
        msg.className = 'msg error';
        msg.textContent = (r.json && r.json.error) || ('Refused: ' + r.status);
      }
    });
    const list = el('ul', { 'data-test': 'allow-list-' + l.name }, ...subjects.map((s) => {
      const rm = el('button', { type: 'button', class: 'secondary' }, 'Remove');
      rm.addEventListener('click', async () => {
        const r = await call('DELETE', API + '/listeners/' + encodeURIComponent(l.name) +
          '/allowed-client-certificate-subjects/' + encodeURIComponent(s));
        msg.className = r.status === 204 ? 'msg' : 'msg error';
        msg.textContent = r.status === 204 ? 'Removed.' : ((r.json && r.json.error) || 'Refused: ' + r.status);
        refresh();
      });
      return el('li', {}, el('span', { class: 'mono' }, s), rm);
    }));
    if (!subjects.length) list.append(el('li', { class: 'muted' }, 'Any certificate that chains to the truststore.'));
    const div = el('div', { class: 'allow' },
      el('div', { class: 'allow-head' }, el('strong', {}, l.name),
        el('span', { class: 'muted' }, 'mode ' + l.tls.client_auth.mode)), list, form, msg);
    if (focused === l.name) setTimeout(() => input.focus(), 0);
    return div;
  }));
}

function renderCerts(inv) {
  fill($('certs'), inv.certificates.map((c) => el('tr', { 'data-test': 'cert-row' },
    el('td', { class: 'mono' }, c.subject, el('div', { class: 'muted' }, 'issuer ' + c.issuer)),
    el('td', {}, ...c.sans.map((s) => el('span', { class: 'tag' }, s))),
    el('td', {}, c.key_type + ' ' + c.key_bits),
    el('td', { class: 'mono' }, c.not_after.replace('T', ' ')),
    daysCell(c.days_left),
    el('td', {}, ...c.used_by.map((u) => el('div', {}, u.listener + ' ', el('span', { class: 'muted' }, '(' + u.keystore + ')')))))));
  $('crls').hidden = $('crls-title').hidden = inv.crls.length === 0;
  fill($('crls'), inv.crls.map((c) => el('tr', {},
    el('td', { class: 'mono' }, c.file), el('td', { class: 'mono' }, c.issuer),
    el('td', {}, c.next_update ? c.next_update.replace('T', ' ') : '—'),
    el('td', { class: 'num' }, c.revoked), el('td', {}, c.used_by.join(', ')))));
}

// Prometheus text: name{labels} value
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    (m[2] || '').replace(/(\w+)="((?:[^"\\]|\\.)*)"/g, (_, k, v) => { labels[k] = v; return ''; });
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function renderMetrics(ms) {
  const sum = (name, pred) => ms.filter((m) => m.name === name && (!pred || pred(m.labels)))
    .reduce((a, m) => a + m.value, 0);
  $('c-open').textContent = sum('tlsgate_connections_open');
  $('c-hs').textContent = sum('tlsgate_handshakes_total', (l) => l.result === 'ok');
  $('c-hs-failed').textContent = sum('tlsgate_handshakes_total', (l) => l.result === 'failed');
  $('c-req').textContent = sum('tlsgate_requests_total');
  $('c-req-classes').replaceChildren(...['2xx', '3xx', '4xx', '5xx'].map((c) =>
    el('span', { class: 'tag' + (c === '5xx' ? ' bad' : c === '4xx' ? ' warn' : '') },
      c + ' ' + sum('tlsgate_requests_total', (l) => l.code === c))));
  const kinds = { tlsgate_handshake_failures_total: 'handshake', tlsgate_request_refusals_total: 'request',
    tlsgate_backend_failures_total: 'backend', tlsgate_admin_auth_failures_total: 'admin login' };
  const rows = ms.filter((m) => kinds[m.name] && m.value > 0).sort((a, b) => b.value - a.value);
  $('c-fail').textContent = sum('tlsgate_request_refusals_total') + sum('tlsgate_backend_failures_total');
  fill($('reasons'), rows.map((m) => el('tr', {}, el('td', { class: 'mono' }, m.labels.reason),
    el('td', {}, kinds[m.name]), el('td', { class: 'num' }, m.value))));
  $('reasons-none').hidden = rows.length > 0;
}

async function refresh() {
  try {
    const [cfg, inv, met, bes] = await Promise.all([
      call('GET', API + '/config'), call('GET', API + '/certificates'), call('GET', '/metrics'),
      call('GET', API + '/backends')]);
    if ([cfg, inv, met, bes].some((r) => r.status !== 200)) throw new Error('HTTP ' + cfg.status);
    $('version').textContent = cfg.json.version;
    renderConfig(cfg.json.config);
    renderBackends(cfg.json.config, bes.json);
    renderCerts(inv.json);
    renderMetrics(parseMetrics(met.text));
    $('app-error').hidden = true;
    $('live').className = 'pill ok';
    $('live').textContent = 'live';
  } catch (e) {
    if (e.message === 'signed out') return;
    $('live').className = 'pill stale';
    $('live').textContent = 'stale';
    $('app-error').hidden = false;
    $('app-error').textContent = 'Cannot reach the gateway: ' + e.message;
  }
}

async function logout() {
  await call('DELETE', API + '/session').catch(() => {});
  showLogin('Signed out.');
}

document.addEventListener('DOMContentLoaded', async () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  const r = await fetch(API + '/session', { credentials: 'same-origin', headers: { 'X-Requested-With': 'console' } });
  if (r.status === 200) start(await r.json()); else showLogin();
});
