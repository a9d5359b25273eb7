// Pure capture rules (extension/js/rules.js) under `node --test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DEFAULT_RULES, RULE_SETTINGS, decide, extensionOf, filterLinks, formatRulesSize, globMatch,
  nameFromUrl, normalizeRules, parseSize, rulesFromSettings, rulesSourceText, settingsFromRules,
  siteMatches, splitList,
} from '../../extension/js/rules.js';

const item = (over = {}) => ({
  url: 'https://dl.example.com/files/debian.iso', finalUrl: '', filename: 'debian.iso',
  mime: 'application/x-iso9660-image', fileSize: 50 * 1024 * 1024, referrer: 'https://example.com/',
  ...over,
});

test('an ordinary https download is captured', () => {
  assert.deepEqual(decide(item(), DEFAULT_RULES), { capture: true, reason: 'captured' });
});

test('capture off leaves everything with the browser', () => {
  const v = decide(item(), { enabled: false });
  assert.equal(v.capture, false);
  assert.match(v.reason, /off/);
});

for (const url of ['blob:https://example.com/1234', 'data:text/plain,hello', 'file:///etc/passwd', 'ftp://x.org/a']) {
  test(`scheme of ${url.slice(0, 12)} stays with the browser`, () => {
    const v = decide(item({ url, finalUrl: '' }), DEFAULT_RULES);
    assert.equal(v.capture, false);
    assert.match(v.reason, /URLs stay in the browser/);
  });
}

test('a redirect to a non-http final URL is not captured either', () => {
  assert.equal(decide(item({ finalUrl: 'data:,x' }), DEFAULT_RULES).capture, false);
});

test('our own hand-backs are never captured again', () => {
  assert.equal(decide(item({ byExtensionId: 'me' }), DEFAULT_RULES, { selfId: 'me' }).capture, false);
  assert.equal(decide(item(), DEFAULT_RULES, { handBack: true }).capture, false);
  assert.equal(decide(item({ byExtensionId: 'other' }), DEFAULT_RULES, { selfId: 'me' }).capture, true);
});

test('a download that answered a form POST stays with the browser', () => {
  const postUrls = new Set(['https://dl.example.com/export']);
  const v = decide(item({ url: 'https://dl.example.com/export' }), DEFAULT_RULES, { postUrls });
  assert.equal(v.capture, false);
  assert.match(v.reason, /POST/);
  assert.equal(decide(item(), DEFAULT_RULES, { postUrls }).capture, true);
});

test('minimum size: smaller known sizes stay, unknown sizes go to Freight', () => {
  const rules = { minSize: 1024 * 1024 };
  assert.equal(decide(item({ fileSize: 1000 }), rules).capture, false);
  assert.equal(decide(item({ fileSize: 1024 * 1024 }), rules).capture, true);
  assert.equal(decide(item({ fileSize: -1 }), rules).capture, true);
  assert.equal(decide(item({ fileSize: 0 }), rules).capture, true);
});

test('the minimum size is said in units, as the options page shows it', () => {
  assert.equal(decide(item({ fileSize: 1000 }), { minSize: 1024 * 1024 }).reason,
    'smaller than 1 MiB');
  assert.equal(decide(item({ fileSize: 1000 }), { minSize: 1500 }).reason,
    'smaller than 1500 bytes');
});

test('always-types beat the minimum size; never-types beat everything but scheme', () => {
  const rules = { minSize: 10 * 1024 * 1024, alwaysTypes: ['ISO'], neverTypes: ['.exe', 'video/*'] };
  assert.equal(decide(item({ fileSize: 10 }), rules).capture, true);
  assert.equal(decide(item({ filename: 'setup.exe', fileSize: 1e9 }), rules).capture, false);
  assert.equal(decide(item({ filename: 'movie', mime: 'video/mp4; codecs=x', fileSize: 1e9 }), rules).capture, false);
  assert.equal(decide(item({ filename: 'a.zip', fileSize: 10 }), rules).capture, false);
});

test('the extension comes from the URL when the browser gave no file name', () => {
  assert.equal(decide(item({ filename: '', url: 'https://x.org/a/b.EXE?x=1' }), { neverTypes: ['exe'] }).capture, false);
});

test('never-sites match the link, the final URL and the page', () => {
  const rules = { neverSites: ['*.bank.test', 'private.org', 'https://x.org/secret/*'] };
  assert.equal(decide(item({ url: 'https://www.bank.test/s.pdf' }), rules).capture, false);
  assert.equal(decide(item({ url: 'https://bank.test/s.pdf' }), rules).capture, true);
  assert.equal(decide(item({ finalUrl: 'https://cdn.private.org/f.iso' }), rules).capture, false);
  assert.equal(decide(item({ referrer: 'https://private.org/page' }), rules).capture, false);
  assert.equal(decide(item({ url: 'https://x.org/secret/a.iso' }), rules).capture, false);
  assert.equal(decide(item({ url: 'https://x.org/public/a.iso' }), rules).capture, true);
});

test('siteMatches: hosts, subdomains, wildcards, ports, URL globs, junk', () => {
  assert.ok(siteMatches('example.com', 'https://example.com/x'));
  assert.ok(siteMatches('example.com', 'http://a.b.example.com:8080/x'));
  assert.ok(!siteMatches('example.com', 'https://notexample.com/'));
  assert.ok(!siteMatches('example.com', 'https://example.com.evil.test/'));
  assert.ok(siteMatches('*.example.com', 'https://a.example.com/'));
  assert.ok(!siteMatches('*.example.com', 'https://example.com/'));
  assert.ok(siteMatches('dl*.example.com', 'https://dl3.example.com/'));
  assert.ok(siteMatches('example.com:8080', 'http://example.com:9/'));
  assert.ok(siteMatches('example.com/files/*', 'https://example.com/files/a.iso'));
  assert.ok(!siteMatches('example.com/files/*', 'https://example.com/other/a.iso'));
  assert.ok(siteMatches('http://127.0.0.1:*/a*', 'http://127.0.0.1:5555/abc'));
  assert.ok(!siteMatches('', 'https://example.com/'));
  assert.ok(!siteMatches('example.com', 'not a url'));
});

test('globMatch treats regex characters literally', () => {
  assert.ok(globMatch('a.b', 'a.b'));
  assert.ok(!globMatch('a.b', 'axb'));
  assert.ok(globMatch('(x)+*', '(x)+yz'));
  assert.ok(globMatch('*', ''));
});

test('normalizeRules rejects bad input with a clear message', () => {
  assert.throws(() => normalizeRules({ enabled: 'yes' }), /enabled must be true or false/);
  assert.throws(() => normalizeRules({ minSize: -1 }), /minSize/);
  assert.throws(() => normalizeRules({ minSize: 1.5 }), /minSize/);
  assert.throws(() => normalizeRules({ neverSites: 'a.com' }), /neverSites must be a list/);
  assert.throws(() => normalizeRules([]), /object/);
  assert.deepEqual(normalizeRules(undefined), { ...DEFAULT_RULES });
  assert.deepEqual(normalizeRules({ alwaysTypes: [' .ISO ', '', 'Video/*'] }).alwaysTypes, ['iso', 'video/*']);
});

test('decide() refuses rules of the wrong shape instead of guessing', () => {
  assert.throws(() => decide(item(), { minSize: 'big' }), /minSize/);
});

test('parseSize and formatRulesSize round-trip', () => {
  assert.equal(parseSize('0'), 0);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('1 KB'), 1024);
  assert.equal(parseSize('1.5m'), 1572864);
  assert.equal(parseSize('2 GiB'), 2 * 1024 ** 3);
  assert.throws(() => parseSize('ten'), /not a size/);
  assert.throws(() => parseSize('-1 MB'), /not a size/);
  for (const n of [0, 100, 1024, 10 * 1024 * 1024, 3 * 1024 ** 3, 1500]) assert.equal(parseSize(formatRulesSize(n)), n);
});

test('splitList and extensionOf', () => {
  assert.deepEqual(splitList(' iso, zip\n7z  '), ['iso', 'zip', '7z']);
  assert.equal(extensionOf('a/b/Movie.MKV'), 'mkv');
  assert.equal(extensionOf('https://x.org/dl/file%2Etar.gz?x=1#y'), 'gz');
  assert.equal(extensionOf('.bashrc'), '');
  assert.equal(extensionOf('C:\\Users\\me\\x.pdf'), 'pdf');
  assert.equal(nameFromUrl('https://x.org/a/b%20c.iso?q'), 'b c.iso');
  assert.equal(nameFromUrl('::'), '');
});

test('filterLinks by kind and extension', () => {
  const links = ['https://x.org/', 'https://x.org/a.iso', 'https://x.org/b.mp4', 'https://x.org/page.html',
    'https://x.org/c.ZIP'].map((url) => ({ url }));
  const urls = (l) => l.map((x) => x.url.slice(14));
  assert.deepEqual(urls(filterLinks(links)), ['a.iso', 'b.mp4', 'c.ZIP']);
  assert.deepEqual(urls(filterLinks(links, { kind: 'archives' })), ['a.iso', 'c.ZIP']);
  assert.deepEqual(urls(filterLinks(links, { kind: 'all', exts: 'zip, .mp4' })), ['b.mp4', 'c.ZIP']);
  assert.equal(filterLinks(links, { kind: 'all' }).length, 5);
});

// --- the rules come from the daemon's settings ----------------------------------------------

const daemonSettings = (over = {}) => ({
  port: 6817, max_active: 3, capture: true, capture_min_size: 0, capture_always_types: [],
  capture_never_types: [], capture_never_sites: [], notify: true, ...over,
});

test('the daemon\'s settings decide: capture off, then on again', () => {
  const off = rulesFromSettings(daemonSettings({ capture: false }));
  assert.deepEqual(decide(item(), off), { capture: false, reason: 'capture is off' });
  const on = rulesFromSettings({ capture: true }, off); // a settings.changed with one key
  assert.equal(decide(item(), on).capture, true);
});

test('capture_min_size from the daemon keeps a smaller file with the browser', () => {
  const rules = rulesFromSettings(daemonSettings({ capture_min_size: 2_000_000 }));
  assert.equal(rules.minSize, 2_000_000);
  const v = decide(item({ fileSize: 1024 * 1024 }), rules);
  assert.equal(v.capture, false);
  assert.match(v.reason, /smaller than 2000000 bytes/);
  assert.equal(decide(item({ fileSize: 2_000_000 }), rules).capture, true);
});

test('type and site rules from the daemon mean what they meant in the options page', () => {
  const rules = rulesFromSettings(daemonSettings({
    capture_min_size: 10 * 1024 * 1024, capture_always_types: ['iso'],
    capture_never_types: ['exe', 'video/*'], capture_never_sites: ['bank.test'],
  }));
  assert.equal(decide(item({ fileSize: 1000 }), rules).capture, true); // always iso
  assert.equal(decide(item({ filename: 'setup.exe', url: 'https://x.org/setup.exe' }), rules).capture, false);
  assert.equal(decide(item({ filename: 'a.mkv', mime: 'video/x-matroska' }), rules).capture, false);
  assert.equal(decide(item({ url: 'https://dl.bank.test/debian.iso' }), rules).capture, false);
});

test('settings the rules do not name are ignored; a rule missing keeps its last value', () => {
  const last = rulesFromSettings(daemonSettings({ capture_never_sites: ['a.test'] }));
  const next = rulesFromSettings({ global_limit: 5, max_active: 1 }, last);
  assert.deepEqual(next, last);
  assert.equal(Object.keys(next).length, Object.keys(DEFAULT_RULES).length);
});

test('a bad value from anywhere is refused, not guessed', () => {
  assert.throws(() => rulesFromSettings(daemonSettings({ capture: 'off' })), /enabled/);
  assert.throws(() => rulesFromSettings(daemonSettings({ capture_min_size: -5 })), /minSize/);
  assert.throws(() => rulesFromSettings(daemonSettings({ capture_never_sites: 'a.test' })), /neverSites/);
  assert.throws(() => rulesFromSettings(null), /settings must be an object/);
});

test('settingsFromRules writes every rule under the daemon\'s name, and reads back', () => {
  const rules = normalizeRules({ enabled: false, minSize: 4096, neverTypes: ['.EXE', 'exe'], notify: false });
  const settings = settingsFromRules(rules);
  assert.deepEqual(Object.keys(settings).sort(), Object.values(RULE_SETTINGS).sort());
  assert.equal(settings.capture, false);
  assert.equal(settings.capture_min_size, 4096);
  assert.deepEqual(settings.capture_never_types, ['exe']); // each once
  assert.deepEqual(rulesFromSettings(settings), rules);
  assert.throws(() => settingsFromRules({ minSize: 'big' }), /minSize/);
});

test('the options page says where the rules it shows come from', () => {
  assert.match(rulesSourceText({ source: 'daemon' }), /shared by every browser/);
  const stored = rulesSourceText({ source: 'stored', at: 0 }, { timeText: () => 'noon' });
  assert.match(stored, /not reachable/);
  assert.match(stored, /last sent \(noon\)/);
  assert.match(rulesSourceText(undefined), /not been reached yet/);
});
