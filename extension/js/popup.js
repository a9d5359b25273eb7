// The popup: the daemon's downloads, live. The daemon is the source of truth; this page keeps
// only a Map built from `list` and then updated by the events the background relays. It asks
// for the newest page of downloads only (PAGE), and for older pages when "Show more" is
// clicked; the counts in the header come from the daemon's `status`, not from the page.

import * as ext from './ext.js';
import { applyEvent, formatSpeed, parseRate, refreshHint, refreshPage } from './format.js';
import { RowList, el } from './popuprows.js';

const $ = (id) => document.getElementById(id);
const PAGE = 100; // downloads asked for at a time
const downloads = new Map();
const rows = new RowList($('list'), downloads, drawRest);
const render = () => rows.schedule();
let total = 0; // the daemon's number of downloads (the last `list` said, then the events)
let knownTotal = null; // the background's count of the daemon's downloads, if it has one
let moreError = ''; // why the last "Show more" failed
let from = 0; // where the oldest page shown starts in the daemon's order (position, id)
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
      knownTotal = msg.total;
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
      else onEvent(msg.method, msg.params);
      if (msg.method.startsWith('download.')) loadCountsSoon();
      break;
    default: break;
  }
});

/** One daemon event: the downloads it names are marked, and drawn at the next frame. */
function onEvent(method, params) {
  const had = downloads.has(params?.id);
  if (!applyEvent(downloads, method, params)) return;
  if (method === 'download.progress') {
    for (const p of params.downloads ?? []) if (downloads.has(p.id)) rows.mark(p.id);
  } else if (method === 'download.added') {
    total += 1;
    rows.mark(params.download.id, true);
  } else {
    if (method === 'download.removed') total = Math.max(0, total - 1);
    rows.mark(params.id, !had);
  }
  render();
}

/** The newest page of downloads. Rows the events brought while the page was asked for are
 * kept: they are newer than the page. */
async function load() {
  try {
    // Where the newest page starts: from the background's count when it has one, else asked
    // (a `list` past the end has no rows, only the total); a count that was wrong is
    // corrected with the total the page came with.
    let expected = Number.isSafeInteger(knownTotal) ? knownTotal : null;
    expected ??= (await call('list', { offset: Number.MAX_SAFE_INTEGER, limit: 1 })).total;
    from = Math.max(0, expected - PAGE);
    let page1 = await call('list', { offset: from, limit: PAGE });
    if (page1.total !== expected) {
      from = Math.max(0, page1.total - PAGE);
      page1 = await call('list', { offset: from, limit: PAGE });
    }
    total = page1.total;
    moreError = '';
    const newest = Math.max(0, ...page1.downloads.map((d) => d.id));
    for (const id of [...downloads.keys()]) {
      if (id <= newest) { downloads.delete(id); rows.mark(id); }
    }
    for (const d of page1.downloads) downloads.set(d.id, d);
    rows.markAll();
    rows.draw(); // the first page at once, not at the next frame
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

/** "Show more": the page before the oldest one shown. */
async function showMore() {
  if (from <= 0) return;
  $('more').disabled = true;
  try {
    const offset = Math.max(0, from - PAGE);
    const older = await call('list', { offset, limit: from - offset });
    for (const d of older.downloads) {
      if (!downloads.has(d.id)) downloads.set(d.id, d); // an event is newer than the page
      rows.mark(d.id, true);
    }
    from = offset;
    total = older.total;
    moreError = '';
  } catch (err) {
    moreError = err.hint || err.message;
  } finally {
    $('more').disabled = false;
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

/** What goes with the rows: the empty note, the header, "Show more", the refresh note. */
function drawRest() {
  // "No downloads yet" only from a daemon that answered with an empty list.
  $('empty').hidden = downloads.size > 0 || status.state !== 'connected';
  renderSummary();
  const more = status.state === 'connected' && from > 0;
  $('more-row').hidden = !more && downloads.size >= total;
  $('more').hidden = !more;
  $('more-text').textContent = moreError
    || `${downloads.size} of ${Math.max(total, downloads.size)} shown`;
  const waiting = refreshWanted.map((w) => w.name);
  $('refresh-note').hidden = waiting.length === 0;
  $('refresh-note').textContent = waiting.length
    ? `Waiting for a fresh link to ${waiting.join(', ')}: open its page and click the download link again.` : '';
}

function renderSummary() {
  const summary = $('summary');
  if (status.state !== 'connected') {
    summary.textContent = DOWN.has(status.state) ? 'not running' : 'connecting…';
    summary.dataset.state = status.state;
    return;
  }
  summary.dataset.state = 'connected';
  const list = [...downloads.values()];
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
$('more').addEventListener('click', showMore);
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
  knownTotal = s.total;
  refreshWanted = s.refreshWanted ?? [];
  setRules(s.rules);
  setRecent(s.recent);
  setStatus(s.status);
}).catch(() => undefined);
