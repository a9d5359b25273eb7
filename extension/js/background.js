// The service worker (Chromium) / background script (Firefox).
//
// MV3 rules this file follows (as uBlock Origin Lite's background.js does):
// - every listener is registered synchronously at the top level, so that an event that wakes a
//   stopped worker (a download click) finds its listener at once;
// - every listener awaits the one `ready` promise before it reads state;
// - the worker's memory is rebuilt from storage on every start: nothing important lives only
//   in a variable (the daemon holds the downloads and the capture rules; storage keeps the
//   rules last read from it, and recent events);
// - messages from our own pages go through one switch, after checking the sender.
//
// Capture is "never both, never neither":
// - Chromium: onDeterminingFilename lets us hold the browser's download while the daemon is
//   asked. The daemon said yes → cancel + erase in the browser; anything else → let the
//   browser carry on with its own download (nothing is re-fetched, nothing is lost).
// - Firefox has no such hold: cancel + erase first, then ask the daemon; when it cannot take
//   the download, re-issue it with downloads.download(), marked so it is not captured again.

import { SeenRequests, downloadRequest } from './cookies.js';
import * as ext from './ext.js';
import { CODES, RpcClient, RpcError } from './rpc.js';
import {
  addOwned, dropOwned, keepKnown, notificationFor, ownedFrom,
} from './owned.js';
import { matchRefresh, trackRefresh, waitingEntry } from './refresh.js';
import {
  DEFAULT_RULES, baseName, cookiePairs, decide, nameFromUrl, normalizeRules, rulesFromSettings,
  settingsFromRules,
} from './rules.js';

const HOST = 'dev.freight.host';
const HAND_BACK_TTL_MS = 60_000;
const POST_TTL_MS = 60_000;
const RECENT_MAX = 20;
// Methods our pages may send to the daemon through the background (checked by name).
const PAGE_METHODS = new Set([
  'list', 'get', 'pause', 'resume', 'cancel', 'remove', 'open', 'set_limits', 'get_settings',
  'set_settings', 'status', 'pause_all', 'resume_all', 'move',
]);

// --- state (rebuilt by init() on every worker start) ----------------------------------------

let rules = { ...DEFAULT_RULES };
// Where `rules` came from: 'daemon' (read from it, and followed through settings.changed
// while connected), 'stored' (the last ones it sent, kept in storage.local RULES_KEY),
// 'default' (it was never reached). `at`: when the daemon sent them.
let rulesInfo = { source: 'default', at: 0 };
const RULES_KEY = 'daemonRules';
const OLD_RULES_KEY = 'rules'; // per-browser rules of older versions: dropped at start (init)
let recent = []; // [{time, name, url, to: 'freight'|'browser', reason}] newest first
let refreshWanted = []; // [{id, name, size, url, finalUrl}] downloads waiting for a new link
// (every needs_refresh download the daemon reports, and any the user picked in the popup)
const handBacks = new Map(); // url → time: downloads we gave back; never capture them again
const postUrls = new Map(); // url → time: page navigations sent as form POST
const seenRequests = new SeenRequests(POST_TTL_MS); // url → who started it (SameSite, cookies.js)
const pagePorts = new Set(); // open popups, fed with live events
const known = new Map(); // daemon download id → state, for the badge
let owned = []; // ids of the downloads this browser sent: only these notify (owned.js)

const rpc = new RpcClient({
  connect: () => ext.connectNative(HOST),
  handshake: [{ method: 'host.hello' }, { method: 'subscribe' }],
  onNotification: onDaemonEvent,
  onStatus: onRpcStatus,
  timeoutMs: 20_000,
});

// --- listeners, all at top level ------------------------------------------------------------

if (ext.canHoldDownloads) {
  ext.onDeterminingFilename((item, suggest) => {
    captureHeld(item, suggest);
    return true; // suggest() is called later, once the daemon has answered
  });
} else {
  ext.onDownloadCreated((item) => { captureAfterCancel(item); });
}
ext.onPostNavigation((url) => { postUrls.set(url, Date.now()); });
ext.onRequestStarted((req) => { seenRequests.add(req, Date.now()); });
ext.onMenuClicked((info, tab) => { onMenu(info, tab); });
ext.onCommand((command) => { if (command === 'toggle-capture') toggleCapture().catch(() => undefined); });
ext.onNotificationClicked((id) => { onNotificationClick(id); });
ext.onInstalled(() => { installMenus(); });
ext.onStartup(() => { installMenus(); });
ext.onStorageChanged((changes, area) => {
  // Our own writes come back here with the rules we hold already; anything else (another
  // of our pages, a test) is last-known rules to follow until the daemon answers again.
  if (area === 'local' && changes[RULES_KEY] && rulesInfo.source !== 'daemon') {
    adoptStoredRules(changes[RULES_KEY].newValue);
  }
});
ext.onConnect((port) => { onPagePort(port); });
ext.onMessage((msg, sender, sendResponse) => {
  if (!ext.isOwnPage(sender)) return false; // web pages and other add-ons get nothing
  handlePageMessage(msg).then(
    (result) => sendResponse({ ok: true, result }),
    (err) => sendResponse({ ok: false, error: errorInfo(err) }),
  );
  return true;
});

const ready = init();

async function init() {
  // Rules an older version kept per browser are dropped, not sent to the daemon: with two
  // browsers, one would silently overwrite the other's (docs/HOST.md "Capture rules").
  await ext.removeLocal(OLD_RULES_KEY);
  adoptStoredRules(await ext.getLocal(RULES_KEY, null));
  recent = await ext.getSession('recent', []);
  refreshWanted = await ext.getSession('refreshWanted', []);
  owned = ownedFrom(await ext.getLocal('owned', []));
  for (const [url, time] of await ext.getSession('handBacks', [])) handBacks.set(url, time);
  updateBadge();
  rpc.start(); // connect now: the port keeps the worker alive and brings live events
}

// --- capture rules: the daemon's settings ---------------------------------------------------

function adoptStoredRules(stored) {
  try {
    rules = rulesFromSettings(stored?.settings ?? {});
    rulesInfo = stored?.settings ? { source: 'stored', at: Number(stored.at) || 0 } : { source: 'default', at: 0 };
  } catch {
    rules = { ...DEFAULT_RULES };
    rulesInfo = { source: 'default', at: 0 };
  }
  rulesChanged();
}

/** The daemon's settings (all, from get_settings / set_settings / settings.changed) → the
 * rules in force now, and kept for the times the daemon cannot be reached. */
async function adoptDaemonSettings(settings) {
  try {
    rules = rulesFromSettings(settings, rules);
  } catch {
    return; // a daemon that sends a bad rule is not followed; the last good rules stay
  }
  rulesInfo = { source: 'daemon', at: Date.now() };
  rulesChanged();
  await ext.setLocal(RULES_KEY, { settings: settingsFromRules(rules), at: rulesInfo.at });
}

function rulesChanged() {
  updateBadge();
  broadcast({ type: 'rules', rules, rulesInfo });
}

/** Make the rules the daemon's own before a download is decided: a worker just woken, or
 * one that lost the daemon, may hold rules changed meanwhile. Returns the error when the
 * daemon cannot be asked (the last known rules then decide), else null. */
async function freshRules() {
  if (rulesInfo.source === 'daemon') return null;
  try {
    await adoptDaemonSettings((await rpc.request('get_settings')).settings);
    return null;
  } catch (err) {
    return err;
  }
}

/** Rules lost their link to the daemon: they are the last known ones until it answers. */
function rulesStale() {
  if (rulesInfo.source !== 'daemon') return;
  rulesInfo = { ...rulesInfo, source: 'stored' };
  rulesChanged();
}

/** Change rules the way every other control does: set_settings in the daemon, which tells
 * every browser (settings.changed). `changes`: the daemon's names, only those meant (a
 * toggle must not write back other rules this worker may hold from before). Throws, saving
 * nothing, when the daemon says no or cannot be reached. */
async function writeSettings(changes) {
  const { settings } = await rpc.request('set_settings', { settings: changes });
  await adoptDaemonSettings(settings);
  return rules;
}

// --- capture --------------------------------------------------------------------------------

function prune(map, ttl) {
  const now = Date.now();
  for (const [k, t] of map) if (now - t > ttl) map.delete(k);
}

function isHandBack(item) {
  prune(handBacks, HAND_BACK_TTL_MS);
  return item.byExtensionId === ext.selfId
    || handBacks.has(item.url) || (item.finalUrl && handBacks.has(item.finalUrl));
}

async function markHandBack(url) {
  handBacks.set(url, Date.now());
  await ext.setSession('handBacks', [...handBacks]);
}

/** plan(), with the daemon's current rules when it can be asked, else the last known ones
 * (a download they send then fails to reach the daemon, and the browser keeps it). */
async function planFresh(item) {
  await freshRules();
  return plan(item);
}

/** What to do with a browser download: {action: 'skip'|'add'|'refresh', reason, target?}. */
function plan(item) {
  if (isHandBack(item)) return { action: 'skip', reason: 'handed back by Freight' };
  prune(postUrls, POST_TTL_MS);
  const verdict = decide(item, rules, { selfId: ext.selfId, postUrls: new Set(postUrls.keys()) });
  const target = matchRefresh(refreshWanted, item);
  // A link the user is refreshing is taken even when a size or type rule would skip it.
  const structural = !verdict.capture && /URLs stay|POST|handed back|not a URL/.test(verdict.reason);
  if (target && !structural) return { action: 'refresh', reason: `new link for #${target.id}`, target };
  return verdict.capture ? { action: 'add', reason: verdict.reason } : { action: 'skip', reason: verdict.reason };
}

async function paramsFor(item, storeId) {
  const url = item.finalUrl || item.url;
  // Only the cookies the browser would send with this request: a page on another site must
  // not get the user's SameSite cookies used for it (cookies.js). `refresh` sends these too.
  const request = downloadRequest(item, await seenRequests.find(item, Date.now()));
  const cookies = cookiePairs(await ext.cookiesFor(request, storeId));
  const params = { url, user_agent: navigator.userAgent };
  const name = baseName(item.filename);
  if (name) params.name = name;
  if (item.referrer) params.referrer = item.referrer;
  if (item.mime) params.mime = item.mime;
  const size = Number(item.fileSize ?? item.totalBytes);
  if (Number.isSafeInteger(size) && size > 0) params.size_hint = size;
  if (cookies.length) params.cookies = cookies;
  return params;
}

/** Send `add` (or `refresh` for a waiting download); resolves with the daemon's id. */
async function sendToDaemon(step, params) {
  if (step.action === 'refresh') {
    const { id } = step.target;
    const res = await rpc.request('refresh', {
      id, url: params.url, ...(params.cookies ? { cookies: params.cookies } : {}),
      ...(params.referrer ? { referrer: params.referrer } : {}),
    }).catch((err) => {
      // The daemon's own check (site, size, validators) refused the link: say why; the
      // caller leaves the download with the browser, and the waiting one keeps waiting.
      if (rules.notify && err instanceof RpcError && err.data?.kind === 'refresh_refused') {
        ext.notify(`freight-refused-${id}`, 'Fresh link refused', err.message);
      }
      throw err;
    });
    await setRefreshWanted(refreshWanted.filter((r) => r.id !== id));
    await setOwned(addOwned(owned, res.id ?? id));
    return res.id ?? id;
  }
  const res = await rpc.request('add', params);
  await setOwned(addOwned(owned, res.id));
  return res.id;
}

/** Replace this browser's list of its own downloads; storage.local keeps it across restarts.
 * The memory copy changes at once: a state event that follows the reply finds it there. */
async function setOwned(next) {
  if (next === owned) return;
  owned = next;
  await ext.setLocal('owned', owned);
}

/** Chromium: the browser's download waits (in onDeterminingFilename) until we decide. */
async function captureHeld(item, suggest) {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    try { suggest(); } catch { /* the download is already gone */ }
  };
  const name = baseName(item.filename) || nameFromUrl(item.finalUrl || item.url);
  try {
    await ready;
    const step = await planFresh(item);
    if (step.action === 'skip') {
      release();
      if (step.reason !== 'handed back by Freight') remember(name, item.url, 'browser', step.reason);
      return;
    }
    const params = await paramsFor(item, ext.cookieStoreFor(item));
    let id;
    try {
      id = await sendToDaemon(step, params);
    } catch (err) {
      release(); // the browser simply carries on with its own download
      remember(name, item.url, 'browser', explain(err));
      return;
    }
    released = true; // never let the browser go on once the daemon has it
    const stopped = await ext.cancelAndErase(item.id);
    if (!stopped) {
      // The browser finished first: keep its file and take the daemon's copy back.
      await rpc.request('cancel', { id }).catch(() => undefined);
      remember(name, item.url, 'browser', 'the browser finished it first');
      return;
    }
    remember(name, item.url, 'freight', step.action === 'refresh' ? `refreshed #${id}` : `#${id}`);
  } catch (err) {
    release();
    remember(name, item.url, 'browser', explain(err));
  }
}

/** Firefox: stop the browser's download first, then ask the daemon; give it back on failure. */
async function captureAfterCancel(item) {
  const name = baseName(item.filename) || nameFromUrl(item.url);
  let stopped = false;
  try {
    await ready;
    const step = await planFresh(item);
    if (step.action === 'skip') {
      if (step.reason !== 'handed back by Freight') remember(name, item.url, 'browser', step.reason);
      return;
    }
    stopped = await ext.cancelAndErase(item.id);
    if (!stopped) {
      remember(name, item.url, 'browser', 'the browser finished it first');
      return;
    }
    const id = await sendToDaemon(step, await paramsFor(item, ext.cookieStoreFor(item)));
    remember(name, item.url, 'freight', `#${id}`);
  } catch (err) {
    if (stopped) await handBack(item.url, name, item.incognito);
    remember(name, item.url, 'browser', explain(err));
  }
}

/** Re-issue a download in the browser, marked so that our own listener lets it through. */
async function handBack(url, name, incognito = false) {
  await markHandBack(url);
  const options = { url, conflictAction: 'uniquify' };
  if (name) options.filename = name;
  if (incognito && ext.isFirefox) options.incognito = true;
  try {
    await ext.browserDownload(options);
  } catch {
    delete options.filename; // a name the browser refuses must not lose the download
    await ext.browserDownload(options);
  }
}

function explain(err) {
  if (err instanceof RpcError) {
    if (err.code === CODES.DAEMON_UNAVAILABLE) return `Freight's daemon is not running (${err.data.reason || err.message})`;
    if (err.code === CODES.HOST_UNAVAILABLE) return `the Freight host is not installed or exited (${err.message})`;
    return `Freight refused it: ${err.message}`;
  }
  return String(err?.message ?? err);
}

function remember(name, url, to, reason) {
  recent = [{ time: Date.now(), name, url, to, reason }, ...recent].slice(0, RECENT_MAX);
  ext.setSession('recent', recent);
  broadcast({ type: 'recent', recent });
}

// --- context menu and picker ----------------------------------------------------------------

function installMenus() {
  ext.resetMenus([
    { id: 'freight-one', title: 'Download with Freight', contexts: ['link', 'image', 'video', 'audio'] },
    { id: 'freight-all', title: 'Download all links with Freight…', contexts: ['page', 'selection'] },
  ]);
}

async function onMenu(info, tab) {
  await ready;
  if (info.menuItemId === 'freight-all') {
    if (tab?.id !== undefined) await ext.openTab(ext.getURL(`picker.html?tab=${tab.id}`));
    return;
  }
  if (info.menuItemId !== 'freight-one') return;
  const url = info.linkUrl || info.srcUrl;
  await addOne({ url, referrer: info.pageUrl }, tab);
}

/** Send one URL chosen by the user (menu or picker); the browser gets it when Freight cannot. */
async function addOne({ url, referrer }, tab) {
  const name = nameFromUrl(url);
  const item = { url, referrer, incognito: Boolean(tab?.incognito), cookieStoreId: tab?.cookieStoreId };
  let scheme = '';
  try { scheme = new URL(url).protocol; } catch { /* reported below */ }
  if (scheme !== 'http:' && scheme !== 'https:') {
    remember(name, url, 'browser', `${scheme || 'this'} URLs stay in the browser`);
    if (scheme) await handBack(url, '', item.incognito);
    return null;
  }
  try {
    const id = await sendToDaemon({ action: 'add' }, await paramsFor(item, ext.cookieStoreFor(item)));
    remember(name, url, 'freight', `#${id}`);
    return id;
  } catch (err) {
    remember(name, url, 'browser', explain(err));
    await handBack(url, '', item.incognito);
    return null;
  }
}

// Runs inside the web page (scripting.executeScript): every link and media source.
function collectPageLinks() {
  const seen = new Set();
  const out = [];
  const push = (url, text, kind) => {
    if (!url || seen.has(url) || !/^https?:/i.test(url)) return;
    seen.add(url);
    out.push({ url, text: (text || '').trim().slice(0, 200), kind });
  };
  for (const a of document.querySelectorAll('a[href]')) push(a.href, a.textContent || a.title, 'link');
  for (const m of document.querySelectorAll('img[src], video[src], audio[src], source[src]')) {
    push(m.src, m.alt || m.title, m.tagName.toLowerCase());
  }
  return { links: out, page: location.href, title: document.title };
}

// --- daemon events → popup, badge, notifications --------------------------------------------

function onRpcStatus(status) {
  broadcast({ type: 'status', status });
  if (status.state === 'connected') refreshKnown();
  if (status.state === 'connected') freshRules();
  else rulesStale();
  updateBadge();
}

async function refreshKnown() {
  try {
    const { downloads, total } = await rpc.request('list', { limit: 500 });
    known.clear();
    let waiting = refreshWanted;
    for (const d of downloads) {
      known.set(d.id, d.state);
      waiting = trackRefresh(waiting, d);
    }
    // A complete list also tells which waiting downloads are gone (removed elsewhere).
    if (downloads.length >= (total ?? 0)) {
      waiting = waiting.filter((w) => known.has(w.id));
      await setOwned(keepKnown(owned, new Set(known.keys())));
    }
    await setRefreshWanted(waiting);
    updateBadge();
  } catch { /* the status banner already says why */ }
}

function onDaemonEvent(method, params) {
  broadcast({ type: 'event', method, params });
  if (method === 'settings.changed' && params.settings) adoptDaemonSettings(params.settings);
  if (method === 'host.daemon') { // the host lost the daemon, or found it again
    rulesStale();
    if (params.connected) freshRules();
  }
  if (method === 'download.added' && params.download) {
    known.set(params.download.id, params.download.state);
  } else if (method === 'download.removed') {
    known.delete(params.id);
    setRefreshWanted(refreshWanted.filter((r) => r.id !== params.id));
    setOwned(dropOwned(owned, params.id));
  } else if (method === 'download.state') {
    const before = known.get(params.id);
    known.set(params.id, params.state);
    setRefreshWanted(trackRefresh(refreshWanted, {
      ...(params.download ?? {}), id: params.id, state: params.state,
    }));
    const note = notificationFor(owned, rules.notify, before, params);
    if (note) ext.notify(note.id, note.title, note.message);
  }
  updateBadge();
}

/** Replace the waiting list, keep it across worker restarts, and show it in open popups. */
async function setRefreshWanted(next) {
  if (JSON.stringify(next) === JSON.stringify(refreshWanted)) return; // no storage write
  refreshWanted = next;
  broadcast({ type: 'refreshWanted', refreshWanted });
  await ext.setSession('refreshWanted', refreshWanted);
}

async function onNotificationClick(notificationId) {
  await ready;
  ext.clearNotification(notificationId);
  const m = /^freight-(done|fail|refresh)-(\d+)$/.exec(notificationId);
  if (m && m[1] === 'done') {
    try {
      await rpc.request('open', { id: Number(m[2]) });
      return;
    } catch { /* fall through to the popup */ }
  }
  await ext.openPopup();
}

function updateBadge() {
  if (!rules.enabled) {
    ext.setBadge('off', '#6b7280');
    return;
  }
  if (rpc.status.state === 'host_unavailable' || rpc.status.state === 'daemon_unavailable') {
    ext.setBadge('!', '#dc2626');
    return;
  }
  const active = [...known.values()].filter((s) => s === 'active').length;
  ext.setBadge(active ? String(active) : '', '#2563eb');
}

async function toggleCapture() {
  await ready;
  await freshRules(); // flip what is in force now, not what this worker last heard
  return (await writeSettings({ capture: !rules.enabled })).enabled;
}

// --- our own pages --------------------------------------------------------------------------

function broadcast(msg) {
  for (const port of pagePorts) {
    try { port.postMessage(msg); } catch { pagePorts.delete(port); }
  }
}

async function onPagePort(port) {
  if (!ext.isOwnPage(port.sender)) {
    port.disconnect();
    return;
  }
  pagePorts.add(port);
  port.onDisconnect.addListener(() => pagePorts.delete(port));
  await ready;
  port.postMessage({ type: 'hello', status: rpc.status, rules, rulesInfo, recent, refreshWanted });
}

function errorInfo(err) {
  if (err instanceof RpcError) return { code: err.code, message: err.message, data: err.data, hint: explain(err) };
  return { code: 0, message: String(err?.message ?? err) };
}

async function handlePageMessage(msg) {
  await ready;
  switch (msg?.type) {
    case 'rpc':
      if (!PAGE_METHODS.has(msg.method)) throw new Error(`method not allowed: ${msg.method}`);
      return rpc.request(msg.method, msg.params ?? {});
    case 'state':
      return { status: rpc.status, rules, rulesInfo, recent, refreshWanted };
    case 'reconnect':
      // The popup's "Try again" (and its opening while the daemon is down): host.hello again,
      // which starts the daemon if it can, and the status says what happened.
      await rpc.recheck().catch(() => undefined);
      return rpc.status;
    case 'setRules':
      // The page's whole form, as the user saves it; bad input throws and nothing is saved.
      return writeSettings(settingsFromRules(normalizeRules(msg.rules)));
    case 'toggleCapture':
      return toggleCapture();
    case 'wantRefresh': {
      const { id } = msg;
      if (!Number.isSafeInteger(id)) throw new Error('wantRefresh needs the download\'s id');
      // The daemon's record, not the page's: the match needs its URL (refresh.js).
      const entry = waitingEntry(await rpc.request('get', { id }));
      await setRefreshWanted([entry, ...refreshWanted.filter((r) => r.id !== id)]);
      return refreshWanted;
    }
    case 'cancelRefresh':
      await setRefreshWanted(refreshWanted.filter((r) => r.id !== msg.id));
      return refreshWanted;
    case 'collectLinks':
      return ext.runInTab(Number(msg.tabId), collectPageLinks);
    case 'addMany': {
      if (!Array.isArray(msg.items)) throw new Error('addMany needs a list of items');
      const tab = msg.tabId !== undefined ? await ext.getTab(Number(msg.tabId)).catch(() => undefined) : undefined;
      const ids = [];
      for (const it of msg.items) ids.push(await addOne({ url: String(it.url), referrer: it.referrer }, tab));
      return ids;
    }
    case 'openOptions':
      return ext.openOptions();
    default:
      throw new Error(`unknown message ${JSON.stringify(msg?.type)}`);
  }
}

// Exposed for tests that drive the worker through Playwright's sw.evaluate().
globalThis.freight = {
  rpc, ready, plan: (item) => plan(item), rules: () => rules, rulesInfo: () => rulesInfo,
  recent: () => recent, owned: () => owned,
};
