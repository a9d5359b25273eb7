// A link the daemon already has (docs/PROTOCOL.md "Duplicates"): the daemon answered `add`
// with the existing download instead of a second copy, and the browser's own download was
// stopped as for any capture. The user gets the choice in a notification: open the file (or
// the popup, for one still to come), download it again (`add` with `again`), or dismiss it,
// which is the "cancel": nothing more happens.
//
// Chromium shows the two buttons. Firefox has no notification buttons: a click on the
// notification opens the file, and the popup's list is where to start it again.

import { rpc } from './daemon.js';
import * as ext from './ext.js';
import { addOwnedId } from './notices.js';
import { nameFromUrl } from './rules.js';

export const OPEN = 0;
export const AGAIN = 1;

// notification id → {id, state, params}: the `add` to send again. In the worker's memory
// only: the params may hold cookies, never written to storage; after a worker restart a
// button falls back to the popup.
const offers = new Map();
let serial = 0;

/** The notification's words for the daemon's `duplicate` answer (pure). */
export function duplicateNote(duplicate, url) {
  const name = duplicate.name || nameFromUrl(url);
  if (duplicate.state === 'completed') {
    return { title: 'Already downloaded', message: duplicate.path || name, open: 'Open file' };
  }
  const what = duplicate.state === 'active' ? 'downloading' : duplicate.state;
  return { title: 'Already in Freight', message: `${name} is ${what} (#${duplicate.id})`,
    open: 'Show' };
}

/** Tell the user the daemon already has this download, with the choices. */
export function offerDuplicate(duplicate, params) {
  serial += 1;
  const nid = `freight-dup-${duplicate.id}-${serial}`;
  offers.set(nid, { id: duplicate.id, state: duplicate.state, params });
  const note = duplicateNote(duplicate, params.url);
  ext.notifyChoices(nid, note.title, note.message,
    [{ title: note.open }, { title: 'Download again' }]);
  return nid;
}

export const isDuplicateNote = (nid) => offers.has(nid) || nid.startsWith('freight-dup-');

/** A click on the notification (`index` null) or on one of its buttons. */
export async function chooseDuplicate(nid, index) {
  ext.clearNotification(nid);
  const offer = offers.get(nid);
  offers.delete(nid);
  if (offer && index === AGAIN) {
    const res = await rpc.request('add', { ...offer.params, again: true });
    await addOwnedId(res.id);
    return res.id;
  }
  if (offer && offer.state === 'completed') {
    try {
      await rpc.request('open', { id: offer.id });
      return offer.id;
    } catch { /* moved or deleted since: the popup shows the list */ }
  }
  await ext.openPopup();
  return null;
}
