// The downloads Freight gave back to the browser: never capture them again. Firefox cannot
// hold a download while the daemon is asked, so a download the daemon could not take after
// it was cancelled is re-issued with downloads.download() and its URL marked here for a
// minute (storage.session keeps the marks across worker restarts). This module is the one
// owner of the marks.

import * as ext from './ext.js';

const HAND_BACK_TTL_MS = 60_000;

const handBacks = new Map(); // url → time: downloads we gave back

/** Drop the entries of a url → time map older than `ttl` ms. */
export function prune(map, ttl) {
  const now = Date.now();
  for (const [k, t] of map) if (now - t > ttl) map.delete(k);
}

export async function loadHandBacks() {
  for (const [url, time] of await ext.getSession('handBacks', [])) handBacks.set(url, time);
}

export function isHandBack(item) {
  prune(handBacks, HAND_BACK_TTL_MS);
  return item.byExtensionId === ext.selfId
    || handBacks.has(item.url) || (item.finalUrl && handBacks.has(item.finalUrl));
}

async function markHandBack(url) {
  handBacks.set(url, Date.now());
  await ext.setSession('handBacks', [...handBacks]);
}

/** Re-issue a download in the browser, marked so that our own listener lets it through. */
export async function handBack(url, name, incognito = false) {
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
