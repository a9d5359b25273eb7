// The popup: the daemon's downloads, live. The daemon is the source of truth; this page keeps
// only a Map built from `list` and then updated by the events the background relays. It asks
// for the newest page of downloads only (PAGE), and for older pages when "Show more" is
// clicked; the counts in the header come from the daemon's `status`, not from the page. The
// rows' order, names, dates and search are popupview.js's (pure, tested under node).

import * as ext from './ext.js';
import { applyEvent, formatSpeed, parseRate, refreshHint, refreshPage } from './format.js';
import { DOWN, bannerFor } from './popupbanner.js';
import { RowList, el } from './popuprows.js';
import { HEADER_WORDS, headerCounts } from './popupview.js';

const $ = (id) => document.getElementById(id);
const PAGE = 100; // downloads asked for at a time
const downloads = new Map();
// What a row shows besides its download (popuprows.js): the names the browser sent downloads
// with, the downloads whose Cancel waits for its Undo (cancels.js), the search.
const view = { given: new Map(), cancelling: new Set(), query: '', dates: false };
const rows = new RowList($('list'), downloads, drawRest, view);
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
      setCancelling(msg.cancelling);
      setStatus(msg.status);
      break;
    case 'cancelling': setCancelling(msg.cancelling); break;
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
    counts.total = total; // what the total was as it answered (it counts no cancelled ones)
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

/** The ids whose Cancel waits for its Undo, as the background holds them. */
function setCancelling(ids) {
  const next = new Set(ids ?? []);
  for (const id of new Set([...view.cancelling, ...next])) {
    if (view.cancelling.has(id) !== next.has(id)) rows.mark(id);
  }
  view.cancelling = next;
  render();
}

function setRecent(recent) {
  // The names this browser sent its downloads with, until the daemon names them.
  for (const r of recent ?? []) {
    if (r.to === 'freight' && Number.isSafeInteger(r.id) && view.given.get(r.id) !== r.name) {
      view.given.set(r.id, r.name);
      rows.mark(r.id);
    }
  }
  render();
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
  $('no-match').hidden = !view.query || rows.shown > 0 || downloads.size === 0;
  renderSummary();
  const more = status.state === 'connected' && from > 0;
  $('more-row').hidden = !more && downloads.size >= total && !view.query;
  $('more').hidden = !more;
  const all = Math.max(total, downloads.size);
  $('more-text').textContent = moreError || (view.query
    ? `${rows.shown} found in ${downloads.size === all ? 'all' : `the ${downloads.size} newest of`} ${all}`
    : `${downloads.size} of ${all} shown`);
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
  // Every state that has downloads: the daemon's counts (its `status`), else the rows'.
  const parts = headerCounts(counts, [...downloads.values()], counts?.total ?? total).map(({ state, count }) => {
    const span = el('span', 'count');
    span.dataset.state = state;
    span.append(el('b', '', String(count)), ` ${HEADER_WORDS[state]}`);
    return span;
  });
  if (!parts.length) parts.push(el('span', 'count', 'no downloads'));
  const speed = counts ? counts.speed : [...downloads.values()]
    .reduce((s, d) => s + (d.state === 'active' ? d.speed ?? 0 : 0), 0);
  if (speed) parts.push(el('span', 'count', formatSpeed(speed)));
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
      // Held for its Undo, then sent by the background (cancels.js).
      case 'cancel': setCancelling(await page('cancelLater', { id })); break;
      case 'undo': setCancelling(await page('undoCancel', { id })); break;
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
$('search').addEventListener('input', () => {
  view.query = $('search').value.trim();
  rows.markAll();
  render();
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
  knownTotal = s.total;
  refreshWanted = s.refreshWanted ?? [];
  setRules(s.rules);
  setRecent(s.recent);
  setCancelling(s.cancelling);
  setStatus(s.status);
}).catch(() => undefined);
