// Which downloads this browser notifies about (extension/js/owned.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  OWNED_MAX, addOwned, dropOwned, groupNotes, keepKnown, notificationFor, ownedFrom,
} from '../../extension/js/owned.js';

const done = (id, extra = {}) => ({ id, state: 'completed', download: { id, name: `f${id}.bin` }, ...extra });

test('only a download this browser sent notifies', () => {
  const owned = addOwned(addOwned([], 3), 5);
  assert.deepEqual(notificationFor(owned, true, 'active', done(5)),
    { id: 'freight-done-5', title: 'Download complete', message: 'f5.bin' });
  assert.equal(notificationFor(owned, true, 'active', done(4)), null); // the CLI's, or another browser's
  assert.equal(notificationFor([], true, 'active', done(5)), null);
  assert.equal(notificationFor(owned, false, 'active', done(5)), null); // the user turned them off
  assert.equal(notificationFor(owned, true, 'completed', done(5)), null); // already told
  assert.equal(notificationFor(owned, true, 'queued', { id: 3, state: 'active' }), null);
  assert.equal(notificationFor(owned, true, 'active', { id: 3, state: 'failed', error: 'HTTP 500' }).message,
    'download #3: HTTP 500');
  assert.equal(notificationFor(owned, true, 'paused', { id: 3, state: 'needs_refresh' }).id, 'freight-refresh-3');
});

test('the list keeps each id once, newest last, bounded', () => {
  let owned = [];
  for (let i = 0; i < OWNED_MAX + 10; i += 1) owned = addOwned(owned, i);
  assert.equal(owned.length, OWNED_MAX);
  assert.equal(owned[0], 10);
  owned = addOwned(owned, 10);
  assert.equal(owned.at(-1), 10);
  assert.equal(owned.filter((x) => x === 10).length, 1);
  assert.deepEqual(addOwned([1], 'x'), [1]);
});

test('removed and unknown ids are dropped; stored junk is ignored', () => {
  const owned = [1, 2, 3];
  assert.deepEqual(dropOwned(owned, 2), [1, 3]);
  assert.equal(dropOwned(owned, 9), owned);
  assert.deepEqual(keepKnown(owned, new Set([3, 1, 7])), [1, 3]);
  assert.equal(keepKnown(owned, new Set([1, 2, 3])), owned);
  assert.deepEqual(keepKnown([1, 2, 9], new Set([1, 7])), [1, 9]); // 9: added after the list
  assert.deepEqual(ownedFrom([1, '2', null, 3.5, 4]), [1, 4]);
  assert.deepEqual(ownedFrom({ 1: 1 }), []);
  assert.deepEqual(ownedFrom(undefined), []);
});

test('notifications that come together are one, saying how many', () => {
  const owned = [1, 2, 3, 4, 5];
  const notes = owned.map((id) => notificationFor(owned, true, 'active', done(id)));
  assert.deepEqual(groupNotes(notes.slice(0, 1)), notes[0]); // alone: as it was
  assert.deepEqual(groupNotes(notes), {
    id: 'freight-done-many', title: '5 downloads complete', message: 'f1.bin, f2.bin, f3.bin and 2 more',
  });
  const failed = [1, 2].map((id) => notificationFor(owned, true, 'active', { id, state: 'failed', error: 'HTTP 500' }));
  assert.deepEqual(groupNotes(failed), {
    id: 'freight-fail-many', title: '2 downloads failed', message: 'download #1: HTTP 500; download #2: HTTP 500',
  });
  assert.equal(groupNotes([]), null);
});
