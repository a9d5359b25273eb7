// Matching a browser download to the download waiting for a fresh link
// (extension/js/refresh.js) under `node --test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  matchRefresh, siteOf, trackRefresh, unnumbered, waitingEntry,
} from '../../extension/js/refresh.js';

const waiting = (over = {}) => ({
  id: 3, name: 'debian.iso', size: 100, url: 'https://dl.example.com/files/debian.iso?sig=old',
  finalUrl: 'https://cdn7.example.com/debian.iso', ...over,
});
const item = (over = {}) => ({
  url: 'https://dl.example.com/files/debian.iso?sig=new', finalUrl: '', filename: 'debian.iso',
  fileSize: 100, referrer: 'https://example.com/downloads', ...over,
});

test('siteOf: scheme and registrable domain; an IP address is its own site', () => {
  assert.equal(siteOf('https://dl.example.com/x'), 'https://example.com');
  assert.equal(siteOf('https://a.b.example.co.uk/x'), 'https://example.co.uk');
  assert.equal(siteOf('http://127.0.0.1:8080/x'), 'http://127.0.0.1');
  assert.equal(siteOf('http://localhost:8080/x'), 'http://localhost');
  assert.equal(siteOf('http://[::1]:8080/x'), 'http://[::1]');
  assert.equal(siteOf('https://EXAMPLE.com./x'), 'https://example.com');
  assert.notEqual(siteOf('http://example.com/'), siteOf('https://example.com/'));
  assert.equal(siteOf('blob:https://example.com/1'), null);
  assert.equal(siteOf(''), null);
  assert.equal(siteOf(undefined), null);
});

test('unnumbered takes away the " (N)" a taken name got', () => {
  assert.equal(unnumbered('movie (1).bin'), 'movie.bin');
  assert.equal(unnumbered('a (12).tar.gz'), 'a.tar.gz');
  assert.equal(unnumbered('README (2)'), 'README');
  assert.equal(unnumbered('movie.bin'), 'movie.bin');
  assert.equal(unnumbered('take (1) two.bin'), 'take (1) two.bin');
});

test('the same file from the same site is the waiting download\'s fresh link', () => {
  assert.equal(matchRefresh([waiting()], item()).id, 3);
  // Another host of the same site (a CDN), found by the final URL.
  assert.equal(matchRefresh([waiting()], item({ url: 'https://cdn9.example.com/debian.iso?s=2' })).id, 3);
  // The size is unknown to the browser: name and site decide.
  assert.equal(matchRefresh([waiting()], item({ fileSize: -1 })).id, 3);
  // A file host on another site, linked from the download's site.
  assert.equal(matchRefresh([waiting()], item({ url: 'https://files.host.test/debian.iso' })).id, 3);
});

test('a page on another site never supplies the fresh link', () => {
  const elsewhere = { url: 'https://evil.test/debian.iso', referrer: 'https://evil.test/page' };
  assert.equal(matchRefresh([waiting()], item(elsewhere)), null);
  assert.equal(matchRefresh([waiting()], item({ ...elsewhere, referrer: '' })), null);
  const local = waiting({ url: 'http://127.0.0.1:8000/movie.bin?sig=1', finalUrl: '', name: 'movie.bin' });
  const other = { url: 'http://localhost:8000/movie.bin?sig=2', referrer: 'http://localhost:8000/page.html',
    filename: 'movie.bin' };
  assert.equal(matchRefresh([local], item(other)), null);
  assert.equal(matchRefresh([local], item({ ...other, url: 'http://127.0.0.1:8000/movie.bin?sig=2' })).id, 3);
  assert.equal(matchRefresh([waiting({ url: '', finalUrl: '' })], item()), null); // nothing known
});

test('another size or another file is not the fresh link', () => {
  assert.equal(matchRefresh([waiting()], item({ fileSize: 101 })), null);
  assert.equal(matchRefresh([waiting()], item({ url: 'https://dl.example.com/other.iso', filename: 'other.iso' })), null);
  assert.equal(matchRefresh([], item()), null);
});

test('a download saved as "name (1).ext" is matched by its own name, never added twice', () => {
  // The folder already had debian.iso: the daemon saved this one as "debian (1).iso".
  const taken = waiting({ name: 'debian (1).iso' });
  assert.equal(matchRefresh([taken], item()).id, 3);
  // Matched by the URL's last segment too, whatever the browser names the file.
  assert.equal(matchRefresh([taken], item({ filename: '/home/u/Downloads/download' })).id, 3);
  // Among two waiting downloads, the one of that name.
  const two = [waiting({ id: 4, name: 'other.bin', url: 'https://dl.example.com/other.bin', finalUrl: '' }), taken];
  assert.equal(matchRefresh(two, item()).id, 3);
});

test('trackRefresh keeps what the match needs of every needs_refresh download', () => {
  const d = { id: 7, state: 'needs_refresh', name: 'a (1).bin', size: 10, url: 'https://x.example/a.bin',
    final_url: 'https://cdn.x.example/a.bin', done: 5 };
  const list = trackRefresh([], d);
  assert.deepEqual(list, [waitingEntry(d)]);
  assert.deepEqual(list[0], { id: 7, name: 'a (1).bin', size: 10, url: 'https://x.example/a.bin',
    finalUrl: 'https://cdn.x.example/a.bin' });
  assert.equal(trackRefresh(list, d), list); // nothing changed: the same array
  assert.deepEqual(trackRefresh(list, { ...d, state: 'queued' }), []);
  assert.deepEqual(trackRefresh(list, { ...d, url: 'https://x.example/a.bin?s=2' })[0].url,
    'https://x.example/a.bin?s=2');
  assert.deepEqual(trackRefresh([], { ...d, size: null, final_url: null })[0],
    { id: 7, name: 'a (1).bin', size: null, url: 'https://x.example/a.bin', finalUrl: '' });
});
