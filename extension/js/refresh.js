// Which browser download is the fresh link of a download that waits for one (pure; node tests).
//
// A download whose signed link expired waits in the daemon (needs_refresh). The user opens its
// page and clicks the link again; the browser's new download is then sent as `refresh` for the
// waiting one instead of a second `add`. It is taken for that download by identity, never by
// the name the daemon shows alone:
// - the same site: the new download's URL (or final URL, or the page it came from) is on the
//   site of the waiting download's URL or final URL, so that a page elsewhere offering a file
//   of the same name and size never becomes its link;
// - the same size, when the browser knows it;
// - the same file name: the last segment of the URL path, or the name the file was saved as
//   without the " (1)" the daemon added when that name was taken (so clicking again never
//   makes a second download of "movie (1).bin").
// The daemon checks again, strictly (docs/PROTOCOL.md "A fresh link": the Public Suffix List,
// the size and the validators the new link's server answers) and refuses anything else; this
// side only decides between `refresh` and `add`, and leans towards `add` when in doubt.

import { baseName, nameFromUrl } from './rules.js';

/** Second-level labels under which a country code's sites sit one level lower (co.uk, ...):
 * without the Public Suffix List, a site is a host's last two labels, or three below these. */
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'gov', 'edu', 'ac', 'or', 'ne', 'go']);

/** "https://dl.example.co.uk/x" → "https://example.co.uk"; an IP address is its own site
 * (127.0.0.1 and localhost are two sites); null for no URL or not http(s). */
export function siteOf(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  const host = parsed.hostname.toLowerCase().replace(/\.$/, ''); // already punycode (A-labels)
  if (!host) return null;
  const scheme = parsed.protocol.slice(0, -1);
  if (host.startsWith('[') || /^\d+(\.\d+){3}$/.test(host)) return `${scheme}://${host}`;
  const labels = host.split('.');
  const keep = labels.length >= 3 && labels.at(-1).length === 2 && SECOND_LEVEL.has(labels.at(-2)) ? 3 : 2;
  return `${scheme}://${labels.slice(-keep).join('.')}`;
}

/** "movie (1).bin" → "movie.bin", "a (2).tar.gz" → "a.tar.gz": a name as it was before the
 * daemon (or the browser) numbered it because it was taken. */
export function unnumbered(name) {
  return String(name ?? '').replace(/ \(\d+\)(?=(?:\.tar\.(?:gz|bz2|xz|zst)|\.[^.]*)?$)/i, '');
}

function waitingNames(w) {
  return [nameFromUrl(w.url), nameFromUrl(w.finalUrl), unnumbered(w.name)].filter(Boolean);
}

function offeredNames(item) {
  const saved = baseName(item.filename);
  return new Set([saved, unnumbered(saved), nameFromUrl(item.url), nameFromUrl(item.finalUrl)]
    .filter(Boolean));
}

/**
 * The waiting download a browser download is the fresh link of, or null. `pending`:
 * [{id, name, size, url, finalUrl}] (see waitingEntry); `item`: the browser's download
 * ({url, finalUrl, referrer, filename, fileSize}).
 */
export function matchRefresh(pending, item) {
  const sites = new Set([item.finalUrl, item.url, item.referrer].map(siteOf).filter(Boolean));
  if (!sites.size) return null;
  const names = offeredNames(item);
  const size = Number(item.fileSize);
  for (const w of pending ?? []) {
    const theirs = [w.url, w.finalUrl].map(siteOf).filter(Boolean);
    if (!theirs.some((s) => sites.has(s))) continue; // a page elsewhere: never its link
    if (w.size && Number.isFinite(size) && size > 0 && w.size !== size) continue;
    if (!waitingNames(w).some((n) => names.has(n))) continue;
    return w;
  }
  return null;
}

/** One download as the daemon reports it ({id, name, size, url, final_url}) → the entry the
 * waiting list keeps of it. */
export function waitingEntry(d) {
  return {
    id: d.id,
    name: d.name ?? '',
    size: Number.isSafeInteger(d.size) && d.size > 0 ? d.size : null,
    url: typeof d.url === 'string' ? d.url : '',
    finalUrl: typeof d.final_url === 'string' ? d.final_url : '',
  };
}

/**
 * Keep the list of downloads waiting for a fresh link in step with the daemon: `d` is one
 * download as the daemon reports it ({id, state, name, size, url, final_url}). A download
 * in needs_refresh waits (so that clicking its link again is recognised without any other
 * step, as the "Link expired" notification tells the user); any other state ends the wait.
 * Returns the new list (the same array when nothing changed).
 */
export function trackRefresh(pending, d) {
  const list = pending ?? [];
  const old = list.find((p) => p.id === d.id);
  if (d.state !== 'needs_refresh' || !d.url) {
    return old ? list.filter((p) => p.id !== d.id) : list;
  }
  const entry = waitingEntry(d);
  if (old && JSON.stringify(old) === JSON.stringify(entry)) return list;
  return [entry, ...list.filter((p) => p.id !== d.id)];
}
