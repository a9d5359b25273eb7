// Which daemon downloads are this browser's own, and so which ones it notifies about (pure;
// node tests).
//
// Every browser's host subscribes to the daemon's events and gets `download.state` for every
// download, whoever added it. A notification belongs to the browser the user acted in, so
// each extension remembers the ids of the downloads it sent (`add` from a captured click, the
// context menu or the picker; `refresh` of a waiting download) and notifies only for those.
// The list is kept in storage.local: it survives the service worker's restarts and a browser
// restart. Downloads added by the CLI (or another browser) are in no list and notify nowhere.
// The list is bounded (OWNED_MAX, oldest dropped) and loses the ids the daemon removed; when
// the daemon's complete list is known, ids it no longer has are dropped too.

export const OWNED_MAX = 1000;

/** The list with `id` added as the newest (once), capped at OWNED_MAX. */
export function addOwned(owned, id) {
  if (!Number.isSafeInteger(id)) return owned ?? [];
  const list = (owned ?? []).filter((x) => x !== id);
  list.push(id);
  return list.length > OWNED_MAX ? list.slice(list.length - OWNED_MAX) : list;
}

/** The list without `id` (the same array when it was not there). */
export function dropOwned(owned, id) {
  const list = owned ?? [];
  return list.includes(id) ? list.filter((x) => x !== id) : list;
}

/** Only the ids the daemon still has (`ids`: every id of its complete list). An id above all
 * of them is newer than that list (added while it was on its way) and is kept. */
export function keepKnown(owned, ids) {
  const list = owned ?? [];
  const newest = Math.max(0, ...ids);
  const kept = list.filter((x) => ids.has(x) || x > newest);
  return kept.length === list.length ? list : kept;
}

/** A stored value made safe to use: an array of whole numbers, else empty. */
export function ownedFrom(value) {
  return Array.isArray(value) ? value.filter(Number.isSafeInteger).slice(-OWNED_MAX) : [];
}

/**
 * The notification one `download.state` event makes in this browser, or null:
 * {id, title, message}. `owned`: this browser's ids; `enabled`: the user's notify rule;
 * `before`: the state this browser last knew (a repeated state notifies once).
 */
export function notificationFor(owned, enabled, before, { id, state, error, download }) {
  if (!enabled || before === state || !(owned ?? []).includes(id)) return null;
  const name = download?.name || `download #${id}`;
  if (state === 'completed') return { id: `freight-done-${id}`, title: 'Download complete', message: name };
  if (state === 'failed') {
    return { id: `freight-fail-${id}`, title: 'Download failed', message: `${name}: ${error || 'error'}` };
  }
  if (state === 'needs_refresh') {
    return {
      id: `freight-refresh-${id}`, title: 'Link expired', message: `${name}: open the page and click the link again`,
    };
  }
  return null;
}

const MANY = {
  done: (n) => `${n} downloads complete`,
  fail: (n) => `${n} downloads failed`,
  refresh: (n) => `${n} links expired`,
};

/** Notifications of one kind that came close together (notificationFor's), as one: the note
 * itself when it is alone, else `freight-<kind>-many` saying how many, with the first names
 * (300 links from the picker make one notification, not 300). */
export function groupNotes(notes) {
  if (notes.length <= 1) return notes[0] ?? null;
  const kind = /^freight-([a-z]+)-/.exec(notes[0].id)?.[1] ?? 'done';
  const first = notes.slice(0, 3).map((n) => n.message).join(kind === 'done' ? ', ' : '; ');
  const more = notes.length > 3 ? ` and ${notes.length - 3} more` : '';
  return { id: `freight-${kind}-many`, title: (MANY[kind] ?? MANY.done)(notes.length), message: first + more };
}
