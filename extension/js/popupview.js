// What the popup shows of its downloads, as pure functions (tested under `node --test`): the
// order of the rows, the header's counts, the name and state a row shows, its date, and which
// rows a search keeps.

import { nameFromUrl } from './rules.js';

// Active first (what moves now), then what will run (queued, in the daemon's queue order: the
// next to start on top), then what waits for the user (paused, failed, a link to refresh),
// then the history, newest first. The newest queued rows never bury the active ones.
const RANK = { active: 0, queued: 1, paused: 2, failed: 3, needs_refresh: 3, completed: 4, removed: 4 };

/** Array.sort comparator for the popup's rows. */
export function popupOrder(a, b) {
  const ra = RANK[a.state] ?? 3;
  const rb = RANK[b.state] ?? 3;
  if (ra !== rb) return ra - rb;
  if (ra === 4) { // the history: the last to finish on top
    return (b.finished_at ?? b.created_at ?? 0) - (a.finished_at ?? a.created_at ?? 0) || b.id - a.id;
  }
  return (a.position ?? a.id) - (b.position ?? b.id) || a.id - b.id;
}

// The header's states, in the rows' order; `failed` counts needs_refresh too (as the daemon's
// `status` does). `removed` is what the popup calls cancelled.
const HEADER = ['active', 'queued', 'paused', 'failed', 'completed', 'removed'];
export const HEADER_WORDS = {
  active: 'active', queued: 'queued', paused: 'paused', failed: 'failed', completed: 'done',
  removed: 'cancelled',
};

/**
 * The header's counts: [{state, count}] for every state that has downloads (none for a
 * state with none: "3 paused", not "0 active"). `status`: the daemon's `status` answer, or
 * null; `rows`: the downloads the popup has; `total`: the daemon's number of downloads.
 * `status` has no count of cancelled downloads: they are the total less every other state
 * (the rows' own count when there is no status).
 */
export function headerCounts(status, rows, total) {
  let counts;
  if (status) {
    counts = Object.fromEntries(HEADER.map((s) => [s, Math.max(0, Number(status[s]) || 0)]));
    const known = HEADER.slice(0, -1).reduce((sum, s) => sum + counts[s], 0);
    counts.removed = Math.max(0, (Number(total) || 0) - known);
  } else {
    counts = Object.fromEntries(HEADER.map((s) => [s, 0]));
    for (const d of rows) {
      const s = d.state === 'needs_refresh' ? 'failed' : d.state;
      if (s in counts) counts[s] += 1;
    }
  }
  return HEADER.filter((s) => counts[s] > 0).map((state) => ({ state, count: counts[state] }));
}

const STATE_WORDS = { needs_refresh: 'link expired', removed: 'cancelled' };

/** The word a row's pill shows for its state. */
export function shownState(d) {
  return STATE_WORDS[d.state] ?? d.state;
}

/** A row's name: the daemon's (known once the server answered), else the one the browser gave
 * when it sent the download, else the URL's last path segment, else its host. */
export function displayName(d, given) {
  if (d.name) return d.name;
  if (given) return given;
  const last = nameFromUrl(d.url);
  if (last) return last;
  try {
    return new URL(d.url).host || d.url;
  } catch {
    return d.url ?? '';
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n) => String(n).padStart(2, '0');

/** A date in seconds since the epoch (as the daemon gives them), in the local time zone,
 * shortly: "09:05" today, "yesterday 22:00", "3 Nov" this year, else "3 Nov 2025". `now` in
 * seconds too (given, so that tests fix it). */
export function formatWhen(seconds, now = Date.now() / 1000) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const t = new Date(seconds * 1000);
  const today = new Date(now * 1000);
  const time = `${two(t.getHours())}:${two(t.getMinutes())}`;
  const sameDay = (a, b) => a.toDateString() === b.toDateString();
  if (sameDay(t, today)) return time;
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (sameDay(t, yesterday)) return `yesterday ${time}`;
  const day = `${t.getDate()} ${MONTHS[t.getMonth()]}`;
  return t.getFullYear() === today.getFullYear() ? day : `${day} ${t.getFullYear()}`;
}

/** A date in seconds since the epoch in full, local time: "2026-12-01 09:05" (by hand, not
 * with toLocaleString: its first call loads the locale's data, which delayed the popup's
 * first rows by ~100 ms). */
export function fullDate(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const t = new Date(seconds * 1000);
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} `
    + `${two(t.getHours())}:${two(t.getMinutes())}`;
}

/** Whether download `d` (shown as `name`) matches the search `query`: every word of it in
 * its name or its URL, whatever the case. */
export function matchesSearch(d, query, name = displayName(d)) {
  const words = String(query ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const text = `${name}\n${d.url ?? ''}`.toLowerCase();
  return words.every((w) => text.includes(w));
}
