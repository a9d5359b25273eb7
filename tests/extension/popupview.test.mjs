// The popup's order, header counts, dates and search (extension/js/popupview.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  displayName, formatWhen, fullDate, headerCounts, matchesSearch, popupOrder, shownState,
} from '../../extension/js/popupview.js';

const d = (id, state, extra = {}) => ({ id, state, position: id, created_at: id, ...extra });

test('active first, then queued in queue order, then paused, failed, then finished newest first', () => {
  const list = [
    d(1, 'completed', { finished_at: 50 }), d(2, 'active'), d(3, 'queued', { position: 9 }),
    d(4, 'queued', { position: 4 }), d(5, 'removed', { finished_at: 70 }), d(6, 'paused'),
    d(7, 'failed'), d(8, 'active'), d(9, 'completed', { finished_at: 60 }), d(10, 'needs_refresh'),
  ];
  assert.deepEqual(list.sort(popupOrder).map((x) => x.id), [2, 8, 4, 3, 6, 7, 10, 5, 9, 1]);
});

test('the newest queued rows do not go above the active ones', () => {
  const list = [d(1, 'active'), ...Array.from({ length: 50 }, (_, i) => d(i + 2, 'queued'))];
  assert.equal(list.sort(popupOrder)[0].id, 1);
});

test('header counts: every state that has downloads, from the daemon; cancelled from the total', () => {
  const status = { active: 0, queued: 0, paused: 3, failed: 1, completed: 5, speed: 0 };
  const counts = headerCounts(status, [], 12);
  assert.deepEqual(counts.map((c) => [c.state, c.count]),
    [['paused', 3], ['failed', 1], ['completed', 5], ['removed', 3]]);
  assert.equal(counts.find((c) => c.state === 'active'), undefined); // not "0 active"
});

test('header counts without the daemon\'s status come from the rows', () => {
  const rows = [d(1, 'active', { speed: 100 }), d(2, 'paused'), d(3, 'paused'), d(4, 'removed'),
    d(5, 'needs_refresh')];
  assert.deepEqual(headerCounts(null, rows, 5).map((c) => [c.state, c.count]),
    [['active', 1], ['paused', 2], ['failed', 1], ['removed', 1]]);
});

test('header counts: nothing at all is an empty list', () => {
  assert.deepEqual(headerCounts({ active: 0, queued: 0, paused: 0, failed: 0, completed: 0 }, [], 0), []);
});

test('a cancelled download is shown as cancelled', () => {
  assert.equal(shownState(d(1, 'removed')), 'cancelled');
  assert.equal(shownState(d(1, 'needs_refresh')), 'link expired');
  assert.equal(shownState(d(1, 'active')), 'active');
});

test('the name: the daemon\'s, else the one the browser gave, else the URL\'s last segment', () => {
  assert.equal(displayName({ name: 'real.iso', url: 'http://h/get?id=1' }), 'real.iso');
  assert.equal(displayName({ name: null, url: 'http://h/files/a%20b.zip?x=1' }, 'browser.zip'), 'browser.zip');
  assert.equal(displayName({ name: null, url: 'http://h/files/a%20b.zip?x=1' }), 'a b.zip');
  assert.equal(displayName({ name: null, url: 'http://host.example/' }), 'host.example');
});

test('dates: a time today, yesterday, else the date', () => {
  const now = new Date(2026, 11, 1, 15, 0).getTime() / 1000;
  const at = (...p) => new Date(...p).getTime() / 1000;
  assert.equal(formatWhen(at(2026, 11, 1, 9, 5), now), '09:05');
  assert.equal(formatWhen(at(2026, 10, 30, 22, 0), now), 'yesterday 22:00');
  assert.equal(formatWhen(at(2026, 10, 3, 8, 0), now), '3 Nov');
  assert.equal(formatWhen(at(2025, 10, 3, 8, 0), now), '3 Nov 2025');
  assert.equal(formatWhen(null, now), '');
  assert.equal(fullDate(at(2025, 10, 3, 8, 5)), '2025-11-03 08:05');
  assert.equal(fullDate(undefined), '');
});

test('search: every word in the name or the URL, any case', () => {
  const x = { name: 'Debian-12.iso', url: 'https://cdimage.debian.org/x/Debian-12.iso' };
  assert.ok(matchesSearch(x, ''));
  assert.ok(matchesSearch(x, 'debian'));
  assert.ok(matchesSearch(x, 'ISO cdimage'));
  assert.ok(!matchesSearch(x, 'ubuntu'));
  assert.ok(matchesSearch({ name: null, url: 'http://h/a.bin' }, 'a.bin'));
});
