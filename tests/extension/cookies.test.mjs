// Which cookies go with a download (extension/js/cookies.js): the browser's own SameSite
// rules (draft-ietf-httpbis-rfc6265bis §5.2, §5.8.3), under `node --test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  SeenRequests, cookiesToSend, downloadRequest, isSameSiteRequest, originOf, registrableDomain,
  sameSite, siteOf,
} from '../../extension/js/cookies.js';

// Cookies as chrome.cookies.getAll gives them.
const cookie = (name, over = {}) => ({
  name, value: `v-${name}`, domain: 'example.com', hostOnly: true, path: '/', secure: true,
  httpOnly: false, sameSite: 'unspecified', session: true, storeId: '0', ...over,
});
const JAR = [
  cookie('strict', { sameSite: 'strict' }),
  cookie('lax', { sameSite: 'lax' }),
  cookie('plain', { sameSite: 'unspecified' }),
  cookie('none', { sameSite: 'no_restriction', secure: true }),
  cookie('none-insecure', { sameSite: 'no_restriction', secure: false }),
];
const names = (cookies) => cookies.map((c) => c.name);
const FILE = 'https://example.com/files/big.iso';

const request = (over = {}) => ({
  url: FILE, initiator: 'https://example.com', topLevel: true, method: 'GET', redirects: [],
  ancestors: [], ...over,
});

test('registrable domains: listed suffixes, default rule, hosts that are their own site', () => {
  const table = [
    ['example.com', 'example.com'],
    ['dl.cdn.example.com', 'example.com'],
    ['www.bbc.co.uk', 'bbc.co.uk'],
    ['co.uk', 'co.uk'], // a public suffix is its own site
    ['a.b.example.com.au', 'example.com.au'],
    ['alice.github.io', 'alice.github.io'],
    ['bob.github.io', 'bob.github.io'],
    ['x.unlisted.jp', 'x.unlisted.jp'], // unlisted suffix under a third-level TLD: the host
    ['www.example.jp', 'www.example.jp'],
    ['www.example.de', 'example.de'],
    ['localhost', 'localhost'],
    ['app.localhost', 'app.localhost'],
    ['127.0.0.1', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['EXAMPLE.COM', 'example.com'],
    ['a..b', 'a..b'],
    ['', ''],
  ];
  for (const [host, want] of table) assert.equal(registrableDomain(host), want, host);
});

test('sites are schemeful; opaque and non-http origins match nothing', () => {
  assert.equal(siteOf('https://dl.example.com:8443/x?y'), 'https://example.com');
  assert.equal(siteOf('http://127.0.0.1:5000/'), 'http://127.0.0.1');
  assert.ok(sameSite('https://www.example.com', 'https://dl.example.com/a'));
  assert.ok(!sameSite('http://example.com', 'https://example.com/'), 'scheme differs');
  assert.ok(!sameSite('http://localhost:1', 'http://127.0.0.1:1/'));
  assert.ok(sameSite('http://127.0.0.1:1', 'http://127.0.0.1:2/'), 'ports do not count');
  assert.ok(!sameSite('https://alice.github.io', 'https://bob.github.io/'));
  for (const opaque of ['null', 'chrome-extension://abc', 'file:///x', 'data:,x', '', null, undefined, 'not a url']) {
    assert.equal(siteOf(opaque), null, String(opaque));
    assert.ok(!sameSite(opaque, opaque), String(opaque));
  }
});

// The table: [what, request overrides, cookies sent].
const CASES = [
  ['same-site top-level GET: everything', {}, ['strict', 'lax', 'plain', 'none', 'none-insecure']],
  ['same site, another host (www → dl)', { initiator: 'https://www.example.com' },
    ['strict', 'lax', 'plain', 'none', 'none-insecure']],
  ['cross-site top-level GET: Lax, unspecified (Lax by default), None+Secure',
    { initiator: 'https://evil.example.net' }, ['lax', 'plain', 'none']],
  ['cross-site top-level POST: only None+Secure', { initiator: 'https://evil.example.net', method: 'POST' }, ['none']],
  ['cross-site top-level HEAD is safe', { initiator: 'https://evil.example.net', method: 'head' }, ['lax', 'plain', 'none']],
  ['cross-site in a frame: only None+Secure', { initiator: 'https://evil.example.net', topLevel: false }, ['none']],
  ['no initiator known: cross-site', { initiator: null }, ['lax', 'plain', 'none']],
  ['opaque initiator: cross-site', { initiator: 'null' }, ['lax', 'plain', 'none']],
  ['an extension page: cross-site', { initiator: 'chrome-extension://abcdef' }, ['lax', 'plain', 'none']],
  ['http page of the same host: cross-site (schemeful)', { initiator: 'http://example.com' }, ['lax', 'plain', 'none']],
  ['redirect chain through another site: cross-site',
    { redirects: ['https://tracker.example.org/r?to=x'] }, ['lax', 'plain', 'none']],
  ['redirect chain within the site: same-site', { redirects: ['https://www.example.com/go'] },
    ['strict', 'lax', 'plain', 'none', 'none-insecure']],
  ['same-site frame whose ancestors are unknown: cross-site', { topLevel: false, ancestors: null }, ['none']],
  ['same-site frame in a same-site page', { topLevel: false, ancestors: ['https://www.example.com/page'] },
    ['strict', 'lax', 'plain', 'none', 'none-insecure']],
  ['same-site frame inside a cross-site page', { topLevel: false, ancestors: ['https://evil.example.net/'] }, ['none']],
];
for (const [what, over, want] of CASES) {
  test(`SameSite: ${what}`, () => {
    assert.deepEqual(names(cookiesToSend(JAR, request(over))), want);
  });
}

test('Secure cookies only over https; domain, path and host-only are checked again', () => {
  const jar = [
    cookie('secure', { secure: true, sameSite: 'lax' }),
    cookie('clear', { secure: false, sameSite: 'lax' }),
    cookie('domain', { secure: false, domain: '.example.com', hostOnly: false }),
    cookie('host-only-other', { secure: false, domain: 'www.example.com' }),
    cookie('host-only-parent', { secure: false, domain: 'example.com', hostOnly: true }),
    cookie('path-files', { secure: false, domain: '.example.com', hostOnly: false, path: '/files' }),
    cookie('path-fil', { secure: false, domain: '.example.com', hostOnly: false, path: '/fil' }),
    cookie('path-other', { secure: false, domain: '.example.com', hostOnly: false, path: '/other/' }),
    cookie('partitioned', { secure: true, partitionKey: { topLevelSite: 'https://example.com' } }),
  ];
  const http = { url: 'http://dl.example.com/files/a.bin', initiator: 'http://dl.example.com' };
  assert.deepEqual(names(cookiesToSend(jar, request(http))), ['domain', 'path-files']);
  const https = { url: 'https://example.com/files/a.bin', initiator: 'https://example.com' };
  assert.deepEqual(names(cookiesToSend(jar, request(https))),
    ['secure', 'clear', 'domain', 'host-only-parent', 'path-files']);
});

test('order is kept as getAll gave it; junk is dropped; a non-http URL gets nothing', () => {
  const jar = [cookie('b'), cookie('a'), null, { name: 1, value: 'x' }, cookie('c')];
  assert.deepEqual(names(cookiesToSend(jar, request())), ['b', 'a', 'c']);
  assert.deepEqual(cookiesToSend(JAR, request({ url: 'ftp://example.com/x' })), []);
  assert.deepEqual(cookiesToSend(JAR, request({ url: 'not a url' })), []);
  assert.deepEqual(cookiesToSend(undefined, request()), []);
});

test('a download without an observed request: the referrer stands in, as a top-level GET', () => {
  const item = { url: 'https://example.com/go', finalUrl: FILE, referrer: 'https://evil.example.net/page?q=1' };
  assert.deepEqual(downloadRequest(item, undefined), {
    url: FILE, initiator: 'https://evil.example.net', topLevel: true, method: 'GET',
    redirects: ['https://example.com/go'], ancestors: null,
  });
  assert.equal(downloadRequest({ url: FILE, referrer: '' }, undefined).initiator, null);
  assert.equal(downloadRequest({ url: FILE, referrer: 'about:blank' }, undefined).initiator, null);
  assert.equal(originOf('https://a.example.com:8443/x'), 'https://a.example.com:8443');
});

test('the observer: initiator, type and redirect chain of the newest request for a URL', async () => {
  const seen = new SeenRequests(60_000);
  seen.add({ requestId: '1', url: 'https://t.example.org/r', initiator: 'https://evil.example.net',
    type: 'main_frame', method: 'GET', ancestors: [] }, 1000);
  seen.add({ requestId: '1', url: FILE, initiator: 'https://evil.example.net', type: 'main_frame',
    method: 'GET', ancestors: [] }, 1001);
  const item = { url: 'https://t.example.org/r', finalUrl: FILE, referrer: 'https://example.com/' };
  const req = downloadRequest(item, await seen.find(item, 1002));
  assert.equal(req.initiator, 'https://evil.example.net'); // not the referrer
  assert.deepEqual(req.redirects, ['https://t.example.org/r']);
  assert.equal(req.topLevel, true);
  assert.deepEqual(names(cookiesToSend(JAR, req)), ['lax', 'plain', 'none']);

  // A browser-initiated navigation has no initiator: the referrer (none here) decides.
  seen.add({ requestId: '2', url: FILE, type: 'main_frame', method: 'GET', ancestors: [] }, 2000);
  assert.equal(downloadRequest({ url: FILE, referrer: '' }, await seen.find({ url: FILE }, 2001)).initiator, null);
  // A sub-frame request is not top-level.
  seen.add({ requestId: '3', url: FILE, initiator: 'https://example.com', type: 'sub_frame',
    method: 'GET', ancestors: null }, 3000);
  assert.equal(downloadRequest({ url: FILE }, await seen.find({ url: FILE }, 3001)).topLevel, false);
  // A frame's ancestors may come later (Chromium: the tab's URL): find waits for them.
  seen.add({ requestId: '4', url: FILE, initiator: 'https://example.com', type: 'sub_frame',
    method: 'GET', ancestors: Promise.resolve(['https://www.example.com/page']) }, 3000);
  const framed = downloadRequest({ url: FILE }, await seen.find({ url: FILE }, 3001));
  assert.deepEqual(framed.ancestors, ['https://www.example.com/page']);
  assert.deepEqual(names(cookiesToSend(JAR, framed)), names(JAR));
  // Entries expire.
  assert.equal(await seen.find({ url: FILE }, 3000 + 60_001), undefined);
});

test('the observer keeps at most `max` entries', async () => {
  const seen = new SeenRequests(60_000, 3);
  for (let i = 0; i < 10; i += 1) {
    seen.add({ requestId: String(i), url: `https://example.com/${i}`, type: 'other' }, i);
  }
  assert.equal(seen.byUrl.size, 3);
  assert.equal(seen.chains.size, 3);
  assert.ok(await seen.find({ url: 'https://example.com/9' }, 10));
  assert.equal(await seen.find({ url: 'https://example.com/0' }, 10), undefined);
});

// A generated property check: for random jars and requests, what is sent is always a subset
// of getAll's answer in its order, a cross-site request never carries a Strict cookie, a
// cross-site request that is not a safe top-level navigation carries only None+Secure ones,
// and a same-site request over https carries every matching cookie.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const pick = (r, list) => list[Math.floor(r() * list.length)];

test('property: subset in order, never Strict cross-site, only None+Secure off-navigation', () => {
  const r = rng(6265);
  const hosts = ['example.com', 'www.example.com', 'dl.example.com', 'example.net', 'evil.example.org',
    'a.github.io', 'b.github.io', 'bbc.co.uk', 'x.bbc.co.uk', '127.0.0.1', 'localhost'];
  const modes = ['strict', 'lax', 'unspecified', 'no_restriction', undefined];
  for (let i = 0; i < 3000; i += 1) {
    const scheme = pick(r, ['https:', 'http:']);
    const host = pick(r, hosts);
    const url = `${scheme}//${host}/files/f${i}.bin`;
    const jar = Array.from({ length: Math.floor(r() * 6) }, (_, k) => cookie(`c${k}`, {
      domain: host, hostOnly: true, secure: scheme === 'https:' && r() < 0.7,
      sameSite: pick(r, modes),
    }));
    const req = {
      url,
      initiator: r() < 0.1 ? null : `${pick(r, ['https:', 'http:'])}//${pick(r, hosts)}`,
      topLevel: r() < 0.7,
      method: pick(r, ['GET', 'GET', 'POST', 'HEAD']),
      redirects: r() < 0.2 ? [`https://${pick(r, hosts)}/r`] : [],
      ancestors: pick(r, [null, [], [`https://${pick(r, hosts)}/`]]),
    };
    const sent = cookiesToSend(jar, req);
    const order = sent.map((c) => jar.indexOf(c));
    assert.ok(order.every((k, j) => k >= 0 && (j === 0 || k > order[j - 1])), 'a subset, in order');
    const same = isSameSiteRequest(req);
    if (!same) {
      assert.ok(!sent.some((c) => c.sameSite === 'strict'), JSON.stringify(req));
      const safeNav = req.topLevel && req.method !== 'POST';
      if (!safeNav) assert.ok(sent.every((c) => c.sameSite === 'no_restriction' && c.secure), JSON.stringify(req));
    } else if (scheme === 'https:') {
      assert.equal(sent.length, jar.length, JSON.stringify(req));
    }
    if (!req.initiator) assert.ok(!same);
  }
});
