// The decision and hand-over of a browser download ("never both, never neither"):
// - Chromium: onDeterminingFilename lets us hold the browser's download while the daemon is
//   asked. The daemon said yes → cancel + erase in the browser; anything else → let the
//   browser carry on with its own download (nothing is re-fetched, nothing is lost).
// - Firefox has no such hold: cancel + erase first, then ask the daemon; when it cannot take
//   the download, re-issue it with downloads.download(), marked so it is not captured again
//   (handback.js).
// This module owns what the decision needs from the browser's requests (form POSTs, who
// started each request) and `recent`, what became of the last downloads.

import { SeenRequests, downloadRequest } from './cookies.js';
import { rpc } from './daemon.js';
import { freshRules, rulesNow } from './daemonrules.js';
import { offerDuplicate } from './duplicate.js';
import * as ext from './ext.js';
import { handBack, isHandBack, prune } from './handback.js';
import { addOwnedId } from './notices.js';
import { matchRefresh } from './refresh.js';
import { CODES, RpcError } from './rpc.js';
import { baseName, cookiePairs, decide, nameFromUrl } from './rules.js';
import { stopWaiting, waitingNow } from './waiting.js';

const POST_TTL_MS = 60_000;
const RECENT_MAX = 20;

const postUrls = new Map(); // url → time: page navigations sent as form POST
const seenRequests = new SeenRequests(POST_TTL_MS); // url → who started it (SameSite, cookies.js)
let recent = []; // [{time, name, url, to: 'freight'|'browser', reason}] newest first
let recentChanged = () => {};

export const recentNow = () => recent;

/** Called with the new list after every entry (open popups show it). */
export function onRecentChanged(listener) {
  recentChanged = listener;
}

export async function loadRecent() {
  recent = await ext.getSession('recent', []);
}

export function notePostNavigation(url) {
  postUrls.set(url, Date.now());
}

export function noteRequest(req) {
  seenRequests.add(req, Date.now());
}

/** plan(), with the daemon's current rules when it can be asked, else the last known ones
 * (a download they send then fails to reach the daemon, and the browser keeps it). */
async function planFresh(item) {
  await freshRules();
  return plan(item);
}

/** What to do with a browser download: {action: 'skip'|'add'|'refresh', reason, target?}. */
export function plan(item) {
  if (isHandBack(item)) return { action: 'skip', reason: 'handed back by Freight' };
  prune(postUrls, POST_TTL_MS);
  const verdict = decide(item, rulesNow(), { selfId: ext.selfId, postUrls: new Set(postUrls.keys()) });
  const target = matchRefresh(waitingNow(), item);
  // A link the user is refreshing is taken even when a size or type rule would skip it.
  const structural = !verdict.capture && /URLs stay|POST|handed back|not a URL/.test(verdict.reason);
  if (target && !structural) return { action: 'refresh', reason: `new link for #${target.id}`, target };
  return verdict.capture ? { action: 'add', reason: verdict.reason } : { action: 'skip', reason: verdict.reason };
}

export async function paramsFor(item, storeId) {
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
export async function sendToDaemon(step, params) {
  if (step.action === 'refresh') {
    const { id } = step.target;
    const res = await rpc.request('refresh', {
      id, url: params.url, ...(params.cookies ? { cookies: params.cookies } : {}),
      ...(params.referrer ? { referrer: params.referrer } : {}),
    }).catch((err) => {
      // The daemon's own check (site, size, validators) refused the link: say why; the
      // caller leaves the download with the browser, and the waiting one keeps waiting.
      if (rulesNow().notify && err instanceof RpcError && err.data?.kind === 'refresh_refused') {
        ext.notify(`freight-refused-${id}`, 'Fresh link refused', err.message);
      }
      throw err;
    });
    await stopWaiting(id);
    await addOwnedId(res.id ?? id);
    return res.id ?? id;
  }
  const res = await rpc.request('add', params);
  await addOwnedId(res.id);
  if (res.duplicate) offerDuplicate(res.duplicate, params); // the daemon has it already
  return res.id;
}

/** Chromium: the browser's download waits (in onDeterminingFilename) until we decide. */
export async function captureHeld(item, suggest, ready) {
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
    remember(name, item.url, 'freight', step.action === 'refresh' ? `refreshed #${id}` : `#${id}`, id);
  } catch (err) {
    release();
    remember(name, item.url, 'browser', explain(err));
  }
}

/** Firefox: stop the browser's download first, then ask the daemon; give it back on failure. */
export async function captureAfterCancel(item, ready) {
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
    remember(name, item.url, 'freight', `#${id}`, id);
  } catch (err) {
    if (stopped) await handBack(item.url, name, item.incognito);
    remember(name, item.url, 'browser', explain(err));
  }
}

/** Why the daemon did not take a download, in the user's words. */
export function explain(err) {
  if (err instanceof RpcError) {
    if (err.code === CODES.DAEMON_UNAVAILABLE) return `Freight's daemon is not running (${err.data.reason || err.message})`;
    if (err.code === CODES.HOST_UNAVAILABLE) return `the Freight host is not installed or exited (${err.message})`;
    return `Freight refused it: ${err.message}`;
  }
  return String(err?.message ?? err);
}

/** Add what became of one download to `recent` (newest first, RECENT_MAX kept); `id`: the
 * daemon's, for one sent to it (the popup shows the name the browser gave it until the
 * daemon knows one: the daemon names a download only once its server answered). */
export function remember(name, url, to, reason, id) {
  recent = [{ time: Date.now(), name, url, to, reason, ...(id ? { id } : {}) }, ...recent].slice(0, RECENT_MAX);
  ext.setSession('recent', recent);
  recentChanged(recent);
}
