// Capture rules: pure functions, no browser API, no clock. The background module feeds them
// plain objects; tests/extension/rules.test.mjs feeds them the same objects under `node --test`.
//
// The one question answered here: "should Freight take this browser download?" The answer is
// always {capture: boolean, reason: string}; the reason is shown in the popup so that a user
// can see why a download stayed with the browser.

// The rules are the daemon's settings, one source for every browser, the tray and
// `freight settings` (docs/ARCHITECTURE.md "Capture rules"); these defaults are the daemon's
// (freight/config.py SETTINGS; tests/extension/test_rules_settings.py holds them equal) and
// apply only until the daemon has been reached once.
export const DEFAULT_RULES = Object.freeze({
  enabled: true, // the popup toggle, the keyboard shortcut and the tray flip this
  minSize: 0, // bytes; a smaller download (of known size) stays with the browser; 0: none
  alwaysTypes: [], // extensions ("iso") or MIME globs ("video/*") captured whatever the size
  neverTypes: [], // extensions or MIME globs never captured
  neverSites: [], // host globs ("*.example.com") or URL globs ("https://x.org/private/*")
  notify: true, // notifications when a download completes or fails
});

/** The daemon's setting behind each rule (get_settings, set_settings, settings.changed). */
export const RULE_SETTINGS = Object.freeze({
  enabled: 'capture',
  minSize: 'capture_min_size',
  alwaysTypes: 'capture_always_types',
  neverTypes: 'capture_never_types',
  neverSites: 'capture_never_sites',
  notify: 'notify',
});

/** The daemon's settings (all of them, or the changed ones) → rules; a rule the settings
 * do not name keeps its value from `base`. Throws on a bad value, as normalizeRules does. */
export function rulesFromSettings(settings, base = DEFAULT_RULES) {
  if (settings === null || typeof settings !== 'object') throw new TypeError('settings must be an object');
  const out = { ...base };
  for (const [rule, name] of Object.entries(RULE_SETTINGS)) {
    if (name in settings) out[rule] = settings[name];
  }
  return normalizeRules(out);
}

/** Rules → the `settings` param of set_settings. */
export function settingsFromRules(rulesInput) {
  const rules = normalizeRules(rulesInput);
  return Object.fromEntries(Object.entries(RULE_SETTINGS).map(([rule, name]) => [name, rules[rule]]));
}

/**
 * What the options page says about where the rules it shows come from.
 * `info`: {source: 'daemon' | 'stored' | 'default', at (ms since the epoch, when stored)}.
 */
export function rulesSourceText(info, { timeText = (t) => new Date(t).toLocaleString() } = {}) {
  if (info?.source === 'daemon') {
    return 'These are Freight\'s settings, shared by every browser, the tray and the freight settings '
      + 'command; a change applies at once.';
  }
  if (info?.source === 'stored') {
    return `Freight's daemon is not reachable: these are the rules it last sent (${timeText(info.at)}), `
      + 'and downloads follow them until it runs again. Changes cannot be saved meanwhile.';
  }
  return 'Freight\'s daemon has not been reached yet: its default rules apply. Changes cannot be '
    + 'saved until it runs.';
}

// Schemes the daemon cannot fetch: the bytes exist only inside the browser (blob:, data:) or on
// this machine already (file:). Everything not http(s) stays with the browser.
const FETCHABLE = new Set(['http:', 'https:']);

/** Return the rules with every field present and of the right type; throw on bad input. */
export function normalizeRules(input) {
  const src = input ?? {};
  if (typeof src !== 'object' || Array.isArray(src)) throw new TypeError('rules must be an object');
  const out = { ...DEFAULT_RULES };
  for (const key of ['enabled', 'notify']) {
    if (!(key in src)) continue;
    if (typeof src[key] !== 'boolean') throw new TypeError(`${key} must be true or false`);
    out[key] = src[key];
  }
  if ('minSize' in src) {
    const n = src.minSize;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TypeError('minSize must be a whole number of bytes ≥ 0');
    out.minSize = n;
  }
  for (const key of ['alwaysTypes', 'neverTypes', 'neverSites']) {
    if (!(key in src)) continue;
    const list = src[key];
    if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
      throw new TypeError(`${key} must be a list of strings`);
    }
    let kept = list.map((v) => v.trim()).filter(Boolean);
    if (key !== 'neverSites') kept = kept.map(normalizeType).filter(Boolean);
    out[key] = [...new Set(kept)]; // each once, in the order given (as freight/capture.py)
  }
  return out;
}

/** "  .ISO " → "iso"; MIME globs keep their slash: "Video/*" → "video/*". */
export function normalizeType(t) {
  return t.trim().toLowerCase().replace(/^\*?\./, '');
}

/** Parse "10 MiB", "10 MB", "512k", "1.5 GiB", "0" into bytes (binary multiples, whichever
 * name is used); throw with a clear message otherwise. */
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(String(text));
  if (!m) throw new TypeError(`not a size: ${JSON.stringify(text)} (try 10 MiB, 512 KiB or 0)`);
  const power = { '': 0, k: 1, m: 2, g: 3, t: 4 }[m[2].toLowerCase()];
  return Math.round(Number(m[1]) * 1024 ** power);
}

/** Split a comma/space/newline separated list typed by the user. */
export function splitList(text) {
  return String(text).split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** Escape a glob into a RegExp source where only `*` (any run of characters) is special. */
function globSource(glob) {
  return glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*');
}

export function globMatch(glob, text) {
  return new RegExp(`^${globSource(glob)}$`, 'i').test(text);
}

/**
 * Does `pattern` cover `url`? A pattern with "/" or "://" is a glob over the whole URL; a bare
 * host pattern covers that host and its subdomains ("example.com" covers "dl.example.com");
 * "*.example.com" covers only subdomains.
 */
export function siteMatches(pattern, url) {
  const p = pattern.trim().toLowerCase();
  if (!p) return false;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (p.includes('/')) {
    return globMatch(p.includes('://') ? p : `*://${p}`, parsed.href)
      || globMatch(p.includes('://') ? p : `*://${p}`, parsed.href.replace(/\/$/, ''));
  }
  const host = parsed.hostname.toLowerCase();
  const bare = p.replace(/:\d+$/, '');
  if (bare.includes('*')) return globMatch(bare, host);
  return host === bare || host.endsWith(`.${bare}`);
}

/** The file extension of a name or URL path, lower case, without the dot ("" when none). */
export function extensionOf(nameOrUrl) {
  let s = String(nameOrUrl ?? '');
  try {
    if (/^[a-z][a-z0-9+.-]*:/i.test(s)) s = decodeURIComponent(new URL(s).pathname);
  } catch { /* keep s as given */ }
  const base = s.split(/[\\/]/).pop() ?? '';
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}

/** The last path component of a file name as the browser reports it (it may be a full path). */
export function baseName(name) {
  return String(name ?? '').split(/[\\/]/).pop() ?? '';
}

function typeListMatches(list, ext, mime) {
  const m = (mime ?? '').toLowerCase().split(';')[0].trim();
  return list.some((t) => (t.includes('/') ? (m && globMatch(t, m)) : (ext && t === ext)));
}

/**
 * Decide about one download.
 *
 * `item`: {url, finalUrl, filename, mime, fileSize, referrer, byExtensionId}
 * `ctx`:  {selfId (our extension id), handBack (true when we re-issued it ourselves),
 *          postUrls (Set of URLs recently requested with POST by a page)}
 */
export function decide(item, rulesInput, ctx = {}) {
  const rules = normalizeRules(rulesInput);
  const url = item.finalUrl || item.url || '';
  if (ctx.handBack || (ctx.selfId && item.byExtensionId === ctx.selfId)) {
    return { capture: false, reason: 'handed back by Freight' };
  }
  if (!rules.enabled) return { capture: false, reason: 'capture is off' };
  for (const u of [item.url, item.finalUrl]) {
    if (!u) continue;
    let scheme;
    try {
      scheme = new URL(u).protocol;
    } catch {
      return { capture: false, reason: `not a URL: ${u.slice(0, 60)}` };
    }
    if (!FETCHABLE.has(scheme)) return { capture: false, reason: `${scheme} URLs stay in the browser` };
  }
  if (ctx.postUrls && [item.url, item.finalUrl].some((u) => u && ctx.postUrls.has(u))) {
    return { capture: false, reason: 'the page sent a form (POST); only the browser can repeat it' };
  }
  for (const site of rules.neverSites) {
    if (siteMatches(site, item.url) || (item.finalUrl && siteMatches(site, item.finalUrl))
        || (item.referrer && siteMatches(site, item.referrer))) {
      return { capture: false, reason: `site rule ${site}` };
    }
  }
  const ext = extensionOf(item.filename) || extensionOf(url);
  if (typeListMatches(rules.neverTypes, ext, item.mime)) {
    return { capture: false, reason: `type rule: never ${ext || item.mime}` };
  }
  if (typeListMatches(rules.alwaysTypes, ext, item.mime)) {
    return { capture: true, reason: `type rule: always ${ext || item.mime}` };
  }
  const size = Number(item.fileSize);
  if (rules.minSize > 0 && Number.isFinite(size) && size > 0 && size < rules.minSize) {
    const shown = formatRulesSize(rules.minSize); // "1 MiB", as the options page has it
    return { capture: false, reason: `smaller than ${/\d$/.test(shown) ? `${shown} bytes` : shown}` };
  }
  return { capture: true, reason: 'captured' };
}

/** The decoded last path segment of a URL ("" when there is none or the URL is bad). */
export function nameFromUrl(url) {
  try {
    return baseName(decodeURIComponent(new URL(url).pathname));
  } catch {
    return '';
  }
}

/** Cookies from cookies.getAll → the daemon's `cookies` param (list of {name, value}). */
export function cookiePairs(cookies) {
  return (cookies ?? []).map((c) => ({ name: c.name, value: c.value }));
}

/** Bytes → the shortest exact text parseSize() reads back ("10 MiB", "512 KiB", "100"), in
 * the unit names of format.js (binary multiples, IEC names). */
export function formatRulesSize(n) {
  if (!n) return '0';
  for (const [unit, p] of [['GiB', 3], ['MiB', 2], ['KiB', 1]]) {
    if (n % 1024 ** p === 0) return `${n / 1024 ** p} ${unit}`;
  }
  return String(n);
}

/** File kinds the link picker filters by (extensions, lower case). */
export const LINK_KINDS = Object.freeze({
  archives: ['zip', '7z', 'rar', 'tar', 'gz', 'tgz', 'bz2', 'xz', 'zst', 'iso', 'img', 'dmg'],
  video: ['mp4', 'mkv', 'webm', 'avi', 'mov', 'm4v', 'flv', 'wmv', 'ts'],
  audio: ['mp3', 'flac', 'ogg', 'opus', 'wav', 'm4a', 'aac'],
  images: ['jpg', 'jpeg', 'png', 'gif', 'webp', 'svg', 'avif', 'bmp', 'tif', 'tiff'],
  documents: ['pdf', 'epub', 'doc', 'docx', 'odt', 'xls', 'xlsx', 'ods', 'ppt', 'pptx', 'txt', 'csv'],
  programs: ['exe', 'msi', 'deb', 'rpm', 'apk', 'appimage', 'pkg', 'jar', 'whl'],
});

/**
 * Links a user may want from a page: `kind` is a LINK_KINDS key, "files" (any link with an
 * extension other than web pages) or "all"; `exts` a user list ("iso, zip") that narrows it.
 */
export function filterLinks(links, { kind = 'files', exts = '' } = {}) {
  const wanted = splitList(exts).map(normalizeType);
  const pages = new Set(['html', 'htm', 'php', 'asp', 'aspx', 'jsp', '']);
  return links.filter((l) => {
    const e = extensionOf(l.url);
    if (wanted.length && !wanted.includes(e)) return false;
    if (kind === 'all') return true;
    if (kind === 'files') return !pages.has(e);
    return (LINK_KINDS[kind] ?? []).includes(e);
  });
}
