// The popup: the daemon's downloads, live. The daemon is the source of truth; this page keeps
// only a Map built from `list` and then updated by the events the background relays.

import * as ext from './ext.js';
import {
  actionsFor, applyEvent, formatBytes, formatEta, formatSpeed, parseRate, percent, refreshHint,
  refreshPage,
} from './format.js';
import { nameFromUrl } from './rules.js';

const $ = (id) => document.getElementById(id);
const downloads = new Map();
const rows = new Map(); // id → row element
let status = { state: 'connecting' };
let counts = null; // the daemon's `status` answer: active, queued, paused, failed, speed
let countsTimer = null;
let refreshWanted = [];
let rechecked = false;

if (new URLSearchParams(location.search).has('page')) document.body.classList.add('page');

async function call(method, params = {}) {
  const res = await ext.sendMessage({ type: 'rpc', method, params });
  if (!res?.ok) throw Object.assign(new Error(res?.error?.message ?? 'no answer'), res?.error ?? {});
  return res.result;
}

async function page(type, extra = {}) {
  const res = await ext.sendMessage({ type, ...extra });
  if (!res?.ok) throw new Error(res?.error?.message ?? 'no answer');
  return res.result;
}

// --- live connection to the background ------------------------------------------------------

const port = ext.connect('popup');
port.onMessage.addListener((msg) => {
  switch (msg.type) {
    case 'hello':
      refreshWanted = msg.refreshWanted ?? [];
      setRules(msg.rules);
      setRecent(msg.recent);
      setStatus(msg.status);
      break;
    case 'status': setStatus(msg.status); break;
    case 'rules': setRules(msg.rules); break;
    case 'recent': setRecent(msg.recent); break;
    case 'refreshWanted': refreshWanted = msg.refreshWanted ?? []; render(); break;
    case 'event':
      if (msg.method === 'settings.changed') showLimit(msg.params.settings?.global_limit);
      else if (applyEvent(downloads, msg.method, msg.params)) render();
      if (msg.method.startsWith('download.')) loadCountsSoon();
      break;
    default: break;
  }
});

async function load() {
  try {
    const { downloads: list } = await call('list', { limit: 500 });
    downloads.clear();
    for (const d of list) downloads.set(d.id, d);
    render();
    await loadCounts();
    const { settings } = await call('get_settings');
    showLimit(settings.global_limit);
  } catch {
    render(); // the banner explains what is missing
  }
}

/** The counts come from the daemon's `status`, not from the list: the list may be cut. */
async function loadCounts() {
  try {
    counts = await call('status');
  } catch {
    counts = null;
  }
  render();
}

function loadCountsSoon() {
  if (countsTimer) return;
  countsTimer = setTimeout(() => { countsTimer = null; loadCounts(); }, 250);
}

const DOWN = new Set(['host_unavailable', 'daemon_unavailable', 'error']);

function bannerFor(s) {
  if (s.state === 'host_unavailable') {
    return {
      title: 'Freight is not connected',
      reason: s.reason,
      text: 'The browser could not start Freight\'s native host, so downloads stay with the '
        + 'browser. Install it (once), then try again:',
      cmd: 'freight install',
    };
  }
  if (s.state === 'daemon_unavailable') {
    return {
      title: 'Freight\'s daemon is not running',
      reason: s.reason,
      text: 'Downloads stay with the browser until it runs. Fix it with:',
      cmd: s.fix || 'freight start',
    };
  }
  return {
    title: 'Freight\'s daemon refused the connection',
    reason: s.reason,
    text: 'Downloads stay with the browser. Find out why with:',
    cmd: s.fix || 'freight doctor',
  };
}

function setStatus(s) {
  const was = status.state;
  status = s ?? { state: 'connecting' };
  const down = DOWN.has(status.state);
  $('banner').hidden = !down;
  document.body.classList.toggle('down', down);
  if (down) {
    const b = bannerFor(status);
    $('banner-title').textContent = b.title;
    $('banner-reason').textContent = b.reason ?? '';
    $('banner-text').textContent = b.text;
    $('banner-cmd').textContent = b.cmd;
    counts = null;
    // Opening the popup asks once whether the daemon is back (host.hello starts it if it can),
    // so that what it shows is the state now, not when the last request failed.
    if (!rechecked) {
      rechecked = true;
      page('reconnect').then(setStatus).catch(() => undefined);
    }
  }
  if (status.state === 'connected' && was !== 'connected') load();
  render();
}

function setRules(rules) {
  $('capture').checked = Boolean(rules?.enabled);
}

function setRecent(recent) {
  const list = (recent ?? []).filter((r) => r.to === 'browser').slice(0, 5);
  $('recent').hidden = list.length === 0;
  const ul = $('recent-list');
  ul.replaceChildren(...list.map((r) => {
    const li = document.createElement('li');
    const b = document.createElement('b');
    b.textContent = r.name || r.url;
    li.append(b, ` — ${r.reason}`);
    li.title = `${new Date(r.time).toLocaleTimeString()} ${r.url}`;
    return li;
  }));
}

function showLimit(limit) {
  $('limit').value = limit ? formatSpeed(limit) : '';
}

// --- rendering ------------------------------------------------------------------------------

const LABELS = {
  pause: 'Pause', resume: 'Resume', cancel: 'Cancel', retry: 'Retry', remove: 'Remove',
  open: 'Open', reveal: 'Show in folder', refresh: 'Refresh link',
};
const STATE_NAMES = { needs_refresh: 'link expired' };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function row(id) {
  let r = rows.get(id);
  if (r) return r;
  r = el('div', 'dl');
  r.dataset.id = id;
  const top = el('div', 'top');
  top.append(el('span', 'name'), el('span', 'pill'));
  const bar = el('div', 'bar');
  bar.append(el('div'));
  r.append(top, bar, el('div', 'meta'), el('div', 'err'), el('div', 'actions'));
  rows.set(id, r);
  return r;
}

function render() {
  const list = [...downloads.values()].sort((a, b) => (b.created_at ?? 0) - (a.created_at ?? 0));
  for (const [id, r] of rows) if (!downloads.has(id)) { r.remove(); rows.delete(id); }
  const main = $('list');
  list.forEach((d, i) => {
    const r = row(d.id);
    fill(r, d);
    if (main.children[i] !== r) main.insertBefore(r, main.children[i] ?? null);
  });
  // "No downloads yet" only from a daemon that answered with an empty list.
  $('empty').hidden = list.length > 0 || status.state !== 'connected';
  renderSummary(list);
  const waiting = refreshWanted.map((w) => w.name);
  $('refresh-note').hidden = waiting.length === 0;
  $('refresh-note').textContent = waiting.length
    ? `Waiting for a fresh link to ${waiting.join(', ')}: open its page and click the download link again.` : '';
}

function renderSummary(list) {
  const summary = $('summary');
  if (status.state !== 'connected') {
    summary.textContent = DOWN.has(status.state) ? 'not running' : 'connecting…';
    summary.dataset.state = status.state;
    return;
  }
  summary.dataset.state = 'connected';
  const live = counts ?? {
    active: list.filter((d) => d.state === 'active').length,
    queued: list.filter((d) => d.state === 'queued').length,
    paused: list.filter((d) => d.state === 'paused').length,
    speed: list.reduce((s, d) => s + (d.state === 'active' ? d.speed ?? 0 : 0), 0),
  };
  const parts = ['active', 'queued', 'paused'].map((name) => {
    const span = el('span', 'count');
    span.dataset.state = name;
    const n = el('b', '', String(live[name] ?? 0));
    span.append(n, ` ${name}`);
    return span;
  });
  if (live.speed) parts.push(el('span', 'count', formatSpeed(live.speed)));
  summary.replaceChildren(...parts);
}

function fill(r, d) {
  r.querySelector('.name').textContent = d.name || nameFromUrl(d.url) || d.url;
  r.querySelector('.name').title = d.path || d.url;
  const pill = r.querySelector('.pill');
  pill.className = `pill ${d.state}`;
  pill.textContent = STATE_NAMES[d.state] ?? d.state;
  const pct = d.state === 'completed' ? 100 : percent(d.done, d.size);
  const bar = r.querySelector('.bar');
  bar.className = `bar ${d.state}${pct === null && d.state === 'active' ? ' unknown' : ''}`;
  bar.firstChild.style.width = `${pct ?? 0}%`;
  const meta = [
    d.size ? `${formatBytes(d.done)} of ${formatBytes(d.size)}` : formatBytes(d.done ?? 0),
    pct !== null && d.state !== 'completed' ? `${Math.floor(pct)}%` : '',
    d.state === 'active' ? formatSpeed(d.speed) : '',
    d.state === 'active' && d.eta !== null && d.eta !== undefined ? `${formatEta(d.eta)} left` : '',
    d.state === 'active' && d.connections ? `${d.connections} conn.` : '',
  ].filter(Boolean);
  r.querySelector('.meta').replaceChildren(...meta.map((m) => el('span', '', m)));
  r.querySelector('.err').textContent = d.state === 'failed' || d.state === 'needs_refresh' ? (d.error ?? '') : '';
  if (d.state !== 'needs_refresh') r.querySelector('.hint')?.remove(); // the wait is over
  const acts = actionsFor(d.state);
  const box = r.querySelector('.actions');
  if (box.dataset.state !== d.state) {
    box.dataset.state = d.state;
    box.replaceChildren(...acts.map((a) => {
      const b = el('button', a === 'refresh' ? 'primary' : '', LABELS[a]);
      b.dataset.action = a;
      return b;
    }));
  }
}

$('list').addEventListener('click', async (ev) => {
  const button = ev.target.closest('button[data-action]');
  if (!button) return;
  const id = Number(button.closest('.dl').dataset.id);
  const d = downloads.get(id);
  button.disabled = true;
  try {
    switch (button.dataset.action) {
      case 'pause': await call('pause', { id }); break;
      case 'resume': case 'retry': await call('resume', { id }); break;
      case 'cancel': await call('cancel', { id }); break;
      case 'remove': await call('remove', { id }); break;
      case 'open': await call('open', { id }); break;
      case 'reveal': await call('open', { id, reveal: true }); break;
      case 'refresh': await refreshFromPage(id, d); break;
      default: break;
    }
  } catch (err) {
    r_error(id, err.hint || err.message);
  } finally {
    button.disabled = false;
  }
});

/** "Refresh link": wait for a fresh link for this download, open the page it came from in a
 * new tab and say what to click there. The click is matched to this download by identity in
 * the background (refresh.js); the hint is shown first, as opening a tab may close a popup. */
async function refreshFromPage(id, d) {
  const full = await call('get', { id }); // the daemon's record: its referrer, not the page's
  refreshWanted = await page('wantRefresh', { id, name: d?.name, size: d?.size ?? null });
  render();
  const target = refreshPage(full);
  const r = rows.get(id);
  if (r) {
    let hint = r.querySelector('.hint');
    if (!hint) r.append(hint = el('div', 'hint'));
    hint.textContent = target ? refreshHint(full) : 'This download has no web page to open: '
      + `give it a fresh link with \`freight refresh ${id} URL\``;
  }
  if (target) await ext.openTab(target);
}

function r_error(id, text) {
  const r = rows.get(id);
  if (r) r.querySelector('.err').textContent = text;
}

// The daemon's `capture` setting, as the tray and `freight settings capture` change it: when
// the daemon cannot be reached nothing changes, and the switch goes back to what is in force.
$('capture').addEventListener('change', async () => {
  const wanted = $('capture').checked;
  try {
    $('capture').checked = await page('toggleCapture');
    $('capture').title = 'Capture browser downloads (Alt+Shift+F)';
  } catch (err) {
    $('capture').checked = !wanted;
    $('capture').title = `Not changed: ${err.message}`;
  }
});
$('options').addEventListener('click', () => page('openOptions'));
$('retry-connect').addEventListener('click', async () => {
  setStatus(await page('reconnect'));
});
$('limit-apply').addEventListener('click', applyLimit);
$('limit').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') applyLimit(); });

async function applyLimit() {
  const msg = $('limit-msg');
  try {
    const limit = parseRate($('limit').value);
    const res = await call('set_limits', { global_limit: limit });
    showLimit(res.global_limit);
    msg.textContent = res.global_limit ? 'limited' : 'no limit';
  } catch (err) {
    msg.textContent = err.hint || err.message;
  }
}

page('state').then((s) => {
  refreshWanted = s.refreshWanted ?? [];
  setRules(s.rules);
  setRecent(s.recent);
  setStatus(s.status);
}).catch(() => undefined);
