// Cancel with undo. The daemon's `cancel` deletes a download's partial data at once, so there
// is nothing to undo once it is sent: the popup's Cancel is held here for UNDO_MS first, and
// Undo within that time drops it. It is held in the background, not in the popup, so that
// closing the popup neither loses the cancel nor sends it early; a popup opened meanwhile
// shows the row as cancelled with its Undo. (Should the browser stop the worker before the
// time is up, the download is simply not cancelled: the safe side.)

import { rpc } from './daemon.js';

export const UNDO_MS = 5000;

const pending = new Map(); // download id → its timer
let changed = () => {};

/** `fn(ids)` whenever the ids waiting to be cancelled change. */
export function onCancelsChanged(fn) {
  changed = fn;
}

/** The ids whose cancel waits for its undo time, oldest first. */
export const cancellingNow = () => [...pending.keys()];

/** Cancel download `id` in UNDO_MS, unless undone first. */
export function cancelLater(id) {
  if (!Number.isSafeInteger(id)) throw new Error('cancel needs the download\'s id');
  clearTimeout(pending.get(id));
  pending.set(id, setTimeout(() => send(id), UNDO_MS));
  changed(cancellingNow());
  return cancellingNow();
}

/** Undo: download `id` is not cancelled. */
export function undoCancel(id) {
  clearTimeout(pending.get(id));
  if (pending.delete(id)) changed(cancellingNow());
  return cancellingNow();
}

async function send(id) {
  try {
    await rpc.request('cancel', { id });
  } catch { /* finished or removed meanwhile: nothing left to cancel */ }
  pending.delete(id);
  changed(cancellingNow());
}
