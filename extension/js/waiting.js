// The downloads waiting for a fresh link: [{id, name, size, url, finalUrl}], every
// needs_refresh download the daemon reports and any the user picked in the popup. The next
// click on a matching link becomes `refresh` (refresh.js decides the match). This module is
// the list's one owner; storage.session keeps it across worker restarts.

import * as ext from './ext.js';

let refreshWanted = [];
let changed = () => {};

export const waitingNow = () => refreshWanted;

/** Called with the new list after every change (open popups show it). */
export function onWaitingChanged(listener) {
  changed = listener;
}

export async function loadWaiting() {
  refreshWanted = await ext.getSession('refreshWanted', []);
}

/** Replace the waiting list, keep it across worker restarts, and show it in open popups. */
export async function setWaiting(next) {
  if (JSON.stringify(next) === JSON.stringify(refreshWanted)) return; // no storage write
  refreshWanted = next;
  changed(refreshWanted);
  await ext.setSession('refreshWanted', refreshWanted);
}

/** The list without download `id` (it got its link, was removed, or the user gave up). */
export function stopWaiting(id) {
  return setWaiting(refreshWanted.filter((r) => r.id !== id));
}
