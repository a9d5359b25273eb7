// Which of the browser's cookies go with a download Freight fetches again: exactly those the
// browser itself attaches to that request, never more. Pure functions, no browser API, no clock
// (times are passed in); tests/extension/cookies.test.mjs runs them under `node --test`.
//
// cookies.getAll({url}) answers "which cookies match this URL" (domain, path, Secure, expiry);
// it does not know who asked. A page on another site linking to a download on a site where the
// user is logged in makes the browser withhold that site's SameSite=Strict cookies (and its Lax
// ones unless the request is a top-level navigation with a safe method); sending them anyway
// would let any page spend the user's session on a request of its choosing, the cross-site
// request forgery SameSite exists to stop. References: draft-ietf-httpbis-rfc6265bis (cited
// "6265bis") §5.2 "Same-site and Cross-site Requests", §5.8.3 "Retrieval Algorithm"; HTML's
// "same site" (scheme and registrable domain: schemeful same-site).
//
// Decisions (docs/SECURITY.md lists them too):
// - No initiator known → cross-site. A download the user typed into the address bar is
//   same-site for the browser, but we cannot tell it from one a page started; withholding is
//   the safe side (it can only keep a cookie back, never send one the browser would not).
// - SameSite unspecified ("unspecified" in Chromium) is Lax, as in Chromium since version 80
//   (draft-west-cookie-incrementalism §3.1). Chromium's two-minute "Lax-allowing-unsafe"
//   window for fresh cookies on cross-site POSTs (6265bis "Lax-Allowing-Unsafe" enforcement)
//   is not reproduced: POST navigations are never captured (rules.js), and on a GET Lax
//   already allows a top-level navigation.
// - SameSite=None ("no_restriction") crosses sites only with Secure
//   (draft-west-cookie-incrementalism §3.2). Chromium refuses to store such a cookie at all;
//   a browser that reports a cookie without the attribute as no_restriction (Firefox with
//   Lax-by-default turned off) gets such a plain http cookie kept back on cross-site requests,
//   where it would send it itself: withheld, never added.
// - Partitioned cookies (CHIPS) are never sent: getAll without a partitionKey does not return
//   them, and one that did belongs to a single top-level site we do not model.
// - Sites need the Public Suffix List, which cannot be fetched at run time here: a small list
//   of common multi-label suffixes is bundled. Under a country TLD known to register at the
//   third level (uk, jp, ...) a suffix missing from the list makes the whole host the site,
//   which only calls more requests cross-site. What the list cannot catch: two tenants of a
//   hosting suffix missing from it (x.example-host.net, y.example-host.net) look same-site.

// Multi-label public suffixes (ICANN and the largest private hosting suffixes of the Public
// Suffix List, https://publicsuffix.org/list/). Single-label TLDs need no entry: the list's
// default rule "*" makes any last label a public suffix.
const MULTI_LABEL_SUFFIXES = new Set(`
co.uk org.uk me.uk ltd.uk plc.uk net.uk sch.uk ac.uk gov.uk nhs.uk police.uk
com.au net.au org.au edu.au gov.au asn.au id.au
co.nz net.nz org.nz ac.nz govt.nz geek.nz school.nz
co.jp ne.jp or.jp ac.jp go.jp ad.jp ed.jp gr.jp lg.jp
co.kr or.kr ne.kr ac.kr go.kr re.kr
com.cn net.cn org.cn gov.cn edu.cn ac.cn
com.hk net.hk org.hk edu.hk gov.hk
com.tw net.tw org.tw edu.tw gov.tw idv.tw
com.sg net.sg org.sg edu.sg gov.sg
com.my net.my org.my edu.my gov.my
co.in net.in org.in firm.in gen.in ind.in ac.in edu.in gov.in
co.id or.id ac.id go.id web.id my.id
co.th in.th ac.th go.th or.th
com.vn net.vn edu.vn gov.vn
com.ph net.ph org.ph edu.ph gov.ph
com.pk net.pk org.pk edu.pk gov.pk
co.il org.il net.il ac.il gov.il
com.tr net.tr org.tr edu.tr gov.tr bel.tr
co.za org.za net.za gov.za ac.za web.za
com.ng org.ng gov.ng edu.ng
co.ke or.ke ac.ke go.ke
com.eg edu.eg gov.eg
com.sa net.sa org.sa edu.sa gov.sa
com.br net.br org.br gov.br edu.br art.br blog.br app.br dev.br eco.br
com.ar net.ar org.ar gob.ar edu.ar
com.mx net.mx org.mx gob.mx edu.mx
com.co net.co org.co gov.co edu.co
com.pe net.pe org.pe gob.pe edu.pe
com.ve net.ve org.ve gob.ve
com.uy edu.uy gub.uy
co.ve com.ec gob.ec com.bo com.py
com.ua net.ua org.ua in.ua kiev.ua gov.ua edu.ua
com.pl net.pl org.pl edu.pl gov.pl waw.pl
com.ru net.ru org.ru msk.ru spb.ru
co.at or.at ac.at gv.at
com.es org.es nom.es gob.es edu.es
com.pt org.pt gov.pt edu.pt
com.gr org.gr net.gr edu.gr gov.gr
com.cy net.cy org.cy
com.mt org.mt
co.it gov.it edu.it
gouv.fr asso.fr nom.fr com.fr
co.hu
eu.org
github.io gitlab.io githubusercontent.com blogspot.com appspot.com herokuapp.com
netlify.app vercel.app pages.dev workers.dev web.app firebaseapp.com fly.dev
onrender.com glitch.me repl.co azurewebsites.net cloudapp.net azurestaticapps.net
s3.amazonaws.com cloudfront.net elasticbeanstalk.com amplifyapp.com
readthedocs.io surge.sh ngrok.io ngrok-free.app trycloudflare.com
wordpress.com tumblr.com neocities.org codeberg.page
`.split(/\s+/).filter(Boolean));

// Country TLDs that register names mostly at the third level: an unlisted second-level
// label under one of them may be a public suffix we do not know, so such a host is its own site.
const THIRD_LEVEL_TLDS = new Set(`
uk au nz jp kr cn hk tw sg my in id th vn ph pk il tr za ng ke eg sa br ar mx co pe ve uy
ec bo py ua pl ru at es pt gr cy mt
`.split(/\s+/).filter(Boolean));

const HTTP_SCHEMES = new Set(['http:', 'https:']);
// RFC 9110 §9.2.1: the methods a Lax cookie may ride along with on a cross-site navigation.
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

function isIpAddress(host) {
  return host.startsWith('[') || host.includes(':') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

/**
 * The registrable domain of a host (the public suffix and one more label), or the host itself
 * when it has none or when we cannot be sure of its suffix (an IP address, a single label such
 * as `localhost`, a public suffix itself, an unlisted suffix under a third-level country TLD).
 */
export function registrableDomain(hostname) {
  const host = String(hostname ?? '').toLowerCase();
  if (!host || isIpAddress(host)) return host;
  const labels = host.split('.');
  if (labels.length < 2 || labels.some((l) => l === '')) return host;
  let suffixLabels = 0;
  for (let i = 1; i < labels.length; i += 1) { // the longest listed suffix wins
    if (MULTI_LABEL_SUFFIXES.has(labels.slice(i).join('.'))) {
      suffixLabels = labels.length - i;
      break;
    }
  }
  if (suffixLabels === 0) {
    if (THIRD_LEVEL_TLDS.has(labels[labels.length - 1]) && labels.length > 2) return host;
    suffixLabels = 1;
  }
  if (labels.length <= suffixLabels) return host;
  return labels.slice(-(suffixLabels + 1)).join('.');
}

/** "https://example.co.uk" for any http(s) URL or origin on that site; null for anything else
 * (an opaque origin "null", an extension page, file:, data:, junk): such a site matches none. */
export function siteOf(urlOrOrigin) {
  let u;
  try {
    u = new URL(String(urlOrOrigin));
  } catch {
    return null;
  }
  if (!HTTP_SCHEMES.has(u.protocol) || !u.hostname) return null;
  return `${u.protocol}//${registrableDomain(u.hostname)}`;
}

/** Schemeful same-site (HTML "same site"): same scheme and same registrable domain. */
export function sameSite(a, b) {
  const site = siteOf(a);
  return site !== null && site === siteOf(b);
}

/**
 * Is the request same-site (6265bis §5.2)? `request`:
 *   url        the URL fetched (after redirects)
 *   initiator  the origin of the page that started it, or null when unknown
 *   topLevel   true for a top-level navigation (a link clicked in the page, a new tab)
 *   redirects  the URLs before `url` in its redirect chain (6265bis §5.2: a request whose
 *              chain left the site is cross-site)
 *   ancestors  for a request that is not top-level: the URLs of the frames above the one it
 *              belongs to (6265bis §5.2.1: every ancestor counts for the site for cookies), or
 *              null when unknown, which makes it cross-site
 */
export function isSameSiteRequest(request) {
  const { url, initiator, topLevel } = request;
  if (!initiator || !sameSite(initiator, url)) return false;
  if (!(request.redirects ?? []).every((r) => sameSite(r, url))) return false;
  if (topLevel) return true;
  return Array.isArray(request.ancestors) && request.ancestors.every((a) => sameSite(a, url));
}

/** RFC 6265 §5.1.3 domain-match, with the host-only flag of 6265bis's storage model. */
function domainMatches(cookie, host) {
  const domain = String(cookie.domain ?? '').toLowerCase().replace(/^\./, '');
  if (!domain) return false;
  if (cookie.hostOnly || isIpAddress(host)) return host === domain;
  return host === domain || host.endsWith(`.${domain}`);
}

/** RFC 6265 §5.1.4 path-match. */
function pathMatches(cookiePath, requestPath) {
  const path = cookiePath || '/';
  if (requestPath === path) return true;
  if (!requestPath.startsWith(path)) return false;
  return path.endsWith('/') || requestPath[path.length] === '/';
}

/**
 * The cookies a browser attaches to `request` (see isSameSiteRequest; `method` defaults to
 * GET), from the ones cookies.getAll gave for its URL, in the order given: 6265bis §5.8.3
 * sorts longer paths first, then older cookies, which is the order Chromium documents for
 * getAll, so the Cookie header reads as the browser's own.
 * getAll({url}) already applies domain, path, Secure and expiry; they are checked again so
 * that this function alone says what is sent.
 */
export function cookiesToSend(cookies, request) {
  let u;
  try {
    u = new URL(request.url);
  } catch {
    return [];
  }
  if (!HTTP_SCHEMES.has(u.protocol)) return [];
  const secureChannel = u.protocol === 'https:';
  const sameSiteRequest = isSameSiteRequest(request);
  const safeTopLevel = Boolean(request.topLevel)
    && SAFE_METHODS.has(String(request.method ?? 'GET').toUpperCase());
  return (cookies ?? []).filter((c) => {
    if (!c || typeof c.name !== 'string' || typeof c.value !== 'string') return false;
    if (c.partitionKey) return false;
    if (c.secure && !secureChannel) return false; // 6265bis §5.8.3 step 1: secure-only
    if (!domainMatches(c, u.hostname) || !pathMatches(c.path, u.pathname)) return false;
    if (sameSiteRequest) return true;
    // 6265bis §5.8.3 step 1, the SameSite part, for a cross-site request:
    switch (c.sameSite) {
      case 'strict': return false;
      case 'no_restriction': return Boolean(c.secure);
      default: return safeTopLevel; // 'lax', 'unspecified' (Lax by default), anything new
    }
  });
}

/** The origin of a URL ("https://example.com"), or null when it has none worth the name. */
export function originOf(url) {
  if (!url) return null;
  try {
    const u = new URL(String(url));
    return HTTP_SCHEMES.has(u.protocol) ? u.origin : null;
  } catch {
    return null;
  }
}

/**
 * The request a browser download came from, for cookiesToSend. `seen` is what the request
 * observer recorded for its URL (SeenRequests.find), or undefined; then the download's
 * referrer stands in for the initiator (Chromium gives at least the referring page's origin,
 * unless the page's referrer policy says no-referrer) and the download counts as a top-level
 * navigation: a link that downloads is one.
 */
export function downloadRequest(item, seen) {
  const url = item.finalUrl || item.url;
  const before = item.finalUrl && item.finalUrl !== item.url ? [item.url] : [];
  if (!seen) {
    return {
      url, initiator: originOf(item.referrer), topLevel: true, method: 'GET', redirects: before,
      ancestors: null,
    };
  }
  return {
    url,
    // (Chromium omits `initiator` for a navigation the browser itself started, and so may
    // Firefox its originUrl: the referrer, which a page cannot set to another origin's URL,
    // is the next best witness)
    initiator: seen.initiator ?? originOf(item.referrer),
    topLevel: seen.type === 'main_frame',
    method: seen.method ?? 'GET',
    redirects: [...new Set([...(seen.chain ?? []), ...before])].filter((r) => r !== url),
    ancestors: seen.ancestors ?? null,
  };
}

/**
 * Recent navigation and download requests, keyed by URL, with their redirect chains (kept by
 * request id): what the webRequest observer saw, so that a download arriving a moment later
 * can learn who started it. Entries older than `ttlMs` are dropped; at most `max` are kept.
 */
export class SeenRequests {
  constructor(ttlMs, max = 500) {
    this.ttlMs = ttlMs;
    this.max = max;
    this.byUrl = new Map(); // url → {time, initiator, type, method, chain, ancestors}
    this.chains = new Map(); // request id → {time, chain}
  }

  /** `req`: {requestId, url, initiator, type, method, ancestors} as ext.onRequestStarted gives
   * (`ancestors` may be a promise: find waits for it). */
  add(req, now) {
    this.prune(now);
    const chain = [...(this.chains.get(req.requestId)?.chain ?? []), req.url];
    this.chains.set(req.requestId, { time: now, chain });
    this.byUrl.delete(req.url); // re-inserted last: the newest request for a URL wins
    this.byUrl.set(req.url, {
      time: now, initiator: req.initiator ?? null, type: req.type, method: req.method,
      chain, ancestors: req.ancestors ?? null,
    });
    for (const map of [this.byUrl, this.chains]) {
      while (map.size > this.max) map.delete(map.keys().next().value);
    }
  }

  /** What was seen for the download's final URL, else for its first one; resolves. */
  async find(item, now) {
    this.prune(now);
    const seen = (item.finalUrl && this.byUrl.get(item.finalUrl)) || this.byUrl.get(item.url);
    if (!seen) return undefined;
    if (typeof seen.ancestors?.then === 'function') seen.ancestors = await seen.ancestors;
    return seen;
  }

  prune(now) {
    for (const map of [this.byUrl, this.chains]) {
      for (const [k, v] of map) if (now - v.time > this.ttlMs) map.delete(k);
    }
  }
}
