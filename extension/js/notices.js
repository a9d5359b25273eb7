// What the user sees of the daemon's downloads outside our pages: the badge (capture off,
// Freight unreachable, or how many downloads are active) and the notifications, which come
// only from the browser that sent a download (owned.js). This module owns `known` (daemon id
// → state, for the badge) and `owned` (the ids this browser sent, kept in storage.local), and
// keeps the waiting-for-a-fresh-link list (waiting.js) in step with the daemon's events.

import { rpc } from './daemon.js';
import { rulesNow } from './daemonrules.js';
import * as ext from './ext.js';
import { addOwned, dropOwned, groupNotes, keepKnown, notificationFor, ownedFrom } from './owned.js';
import { trackRefresh } from './refresh.js';
import { setWaiting, stopWaiting, waitingNow } from './waiting.js';

const known = new Map(); // daemon download id → state, for the badge
let owned = []; // ids of the downloads this browser sent: only these notify (owned.js)
let total = null; // how many downloads the daemon has (its last `list`, then the events)

export const ownedNow = () => owned;
/** The daemon's number of downloads as last known, or null (the popup's first page starts
 * from it; the popup checks it against the page's own total). */
export const totalNow = () => total;

export async function loadOwned() {
  owned = ownedFrom(await ext.getLocal('owned', []));
}

/** Replace this browser's list of its own downloads; storage.local keeps it across restarts.
 * The memory copy changes at once: a state event that follows the reply finds it there. */
async function setOwned(next) {
  if (next === owned) return;
  owned = next;
  await ext.setLocal('owned', owned);
}

/** Download `id` was sent by this browser (`add`, or `refresh` of a waiting one). */
export function addOwnedId(id) {
  return setOwned(addOwned(owned, id));
}

/** On connecting: the daemon's whole list, for the badge, the waiting list and `owned`. */
export async function refreshKnown() {
  try {
    const { downloads, total: all } = await rpc.request('list', { limit: 500 });
    total = all ?? null;
    known.clear();
    let waiting = waitingNow();
    for (const d of downloads) {
      known.set(d.id, d.state);
      waiting = trackRefresh(waiting, d);
    }
    // A complete list also tells which waiting downloads are gone (removed elsewhere).
    if (downloads.length >= (all ?? 0)) {
      waiting = waiting.filter((w) => known.has(w.id));
      await setOwned(keepKnown(owned, new Set(known.keys())));
    }
    await setWaiting(waiting);
    updateBadge();
  } catch { /* the status banner already says why */ }
}

/** A daemon event about a download: follow it, and notify when it is this browser's. */
export function trackDownloadEvent(method, params) {
  if (method === 'download.added' && params.download) {
    known.set(params.download.id, params.download.state);
    if (total !== null) total += 1;
  } else if (method === 'download.removed') {
    known.delete(params.id);
    if (total !== null) total = Math.max(0, total - 1);
    stopWaiting(params.id);
    setOwned(dropOwned(owned, params.id));
  } else if (method === 'download.state') {
    const before = known.get(params.id);
    known.set(params.id, params.state);
    setWaiting(trackRefresh(waitingNow(), {
      ...(params.download ?? {}), id: params.id, state: params.state,
    }));
    const note = notificationFor(owned, rulesNow().notify, before, params);
    if (note) notifyGathered(note);
  }
}

const GATHER_MS = 1000; // a notification waits this long for others of its kind
const GATHER_MAX_MS = 10_000; // but no longer than this after the first one
const gathering = new Map(); // kind (done, fail, refresh) → {notes, first, timer}

/** Show `note`, with the others of its kind that follow it closely, as one notification. */
function notifyGathered(note) {
  const kind = note.id.split('-')[1];
  const g = gathering.get(kind) ?? { notes: [], first: Date.now(), timer: 0 };
  gathering.set(kind, g);
  g.notes.push(note);
  clearTimeout(g.timer);
  g.timer = setTimeout(() => {
    gathering.delete(kind);
    const one = groupNotes(g.notes);
    ext.notify(one.id, one.title, one.message);
  }, Math.max(0, Math.min(GATHER_MS, g.first + GATHER_MAX_MS - Date.now())));
}

/** A click on one of our notifications: a finished download opens, anything else the popup. */
export async function openNotified(notificationId) {
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

export function updateBadge() {
  if (!rulesNow().enabled) {
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
