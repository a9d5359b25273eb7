// Popup formatting and the event reducer (extension/js/format.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  actionsFor, applyEvent, formatBytes, formatEta, formatSpeed, parseRate, percent,
} from '../../extension/js/format.js';

test('formatBytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(662700032), '632 MiB');
  assert.equal(formatBytes(null), '?');
  assert.equal(formatBytes(-5), '?');
});

test('formatSpeed and formatEta', () => {
  assert.equal(formatSpeed(10485760), '10.0 MiB/s');
  assert.equal(formatSpeed(0), '');
  assert.equal(formatEta(51.4), '51 s');
  assert.equal(formatEta(185), '3 min 5 s');
  assert.equal(formatEta(7800), '2 h 10 min');
  assert.equal(formatEta(null), '');
  assert.equal(formatEta(90000), '1 d 1 h');
});

test('percent clamps and knows unknown sizes', () => {
  assert.equal(percent(50, 200), 25);
  assert.equal(percent(300, 200), 100);
  assert.equal(percent(5, null), null);
  assert.equal(percent(5, 0), null);
});

test('parseRate', () => {
  assert.equal(parseRate(''), null);
  assert.equal(parseRate('none'), null);
  assert.equal(parseRate('2 MB/s'), 2 * 1024 * 1024);
  assert.equal(parseRate('500k'), 512000);
  assert.equal(parseRate('100'), 100);
  assert.throws(() => parseRate('fast'), /not a speed/);
  assert.throws(() => parseRate('0.1'), /at least 1/);
});

test('actionsFor follows the state table', () => {
  assert.deepEqual(actionsFor('active'), ['pause', 'cancel']);
  assert.deepEqual(actionsFor('needs_refresh'), ['refresh', 'remove']);
  assert.deepEqual(actionsFor('completed'), ['open', 'reveal', 'remove']);
  assert.deepEqual(actionsFor('bogus'), []);
});

test('applyEvent keeps the map in step with the daemon', () => {
  const m = new Map();
  assert.ok(applyEvent(m, 'download.added', { download: { id: 1, name: 'a', state: 'queued', done: 0 } }));
  applyEvent(m, 'download.state', { id: 1, state: 'active' });
  applyEvent(m, 'download.progress', { downloads: [{ id: 1, done: 10, size: 20, speed: 5, eta: 2, connections: 4 }, { id: 99, done: 1 }] });
  assert.deepEqual(m.get(1), { id: 1, name: 'a', state: 'active', done: 10, size: 20, speed: 5, eta: 2, connections: 4, error: null });
  assert.ok(!m.has(99), 'progress for an unknown id does not invent a download');
  applyEvent(m, 'download.state', { id: 1, state: 'failed', error: 'boom', download: { id: 1, name: 'a', state: 'failed', done: 12 } });
  assert.equal(m.get(1).error, 'boom');
  assert.equal(m.get(1).done, 12);
  assert.ok(applyEvent(m, 'download.removed', { id: 1 }));
  assert.equal(m.size, 0);
  assert.equal(applyEvent(m, 'something.else', {}), false);
});

test('refreshPage: the referrer, else the origin of the URL, never another scheme', async () => {
  const { refreshPage, refreshHint } = await import('../../extension/js/format.js');
  assert.equal(refreshPage({ referrer: 'https://files.example/page?x=1#top', url: 'https://cdn.example/a' }),
    'https://files.example/page?x=1#top');
  assert.equal(refreshPage({ referrer: null, url: 'https://cdn.example/dl/a.bin?sig=1' }), 'https://cdn.example/');
  assert.equal(refreshPage({ referrer: 'javascript:alert(1)', url: 'http://h.example:8080/a' }),
    'http://h.example:8080/');
  assert.equal(refreshPage({ referrer: 'https://u:pw@files.example/p', url: 'x' }), 'https://files.example/p');
  assert.equal(refreshPage({ referrer: 'file:///etc/passwd', url: 'ftp://h/x' }), null);
  assert.equal(refreshPage({}), null);
  assert.equal(refreshHint({ id: 7, name: 'movie (1).bin' }),
    'Click the link to movie (1).bin on that page: Freight takes the new link for download #7');
});

test('download.changed brings the name the server gave (and keeps the live progress)', () => {
  const m = new Map([[3, { id: 3, name: null, url: 'http://h/get?id=3', state: 'active', done: 500 }]]);
  assert.equal(applyEvent(m, 'download.changed', {
    download: { id: 3, name: 'real.iso', url: 'http://h/get?id=3', state: 'active', done: 0, size: 900 },
  }), true);
  assert.deepEqual(m.get(3), { id: 3, name: 'real.iso', url: 'http://h/get?id=3', state: 'active', done: 500, size: 900 });
});
