// Pure formatting for the popup and picker (tested under `node --test`).

// Sizes and rates follow daemon/freight/units.py exactly (a test runs both over one table):
// binary multiples with IEC names, whole bytes without decimals, one decimal below 100 of a
// unit and none from 100 on, rounded halves up; what rounds to 1024 shows in the next unit.
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB"; null/undefined/negative → "?". */
export function formatBytes(n) {
  if (n === null || n === undefined || typeof n === 'boolean') return '?';
  let v = Number(n);
  if (!Number.isFinite(v) || v < 0) return '?';
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  for (;;) {
    if (i > 0) {
      const tenths = Math.floor(v * 10 + 0.5);
      if (tenths < 1000) return `${Math.floor(tenths / 10)}.${tenths % 10} ${UNITS[i]}`;
    }
    const whole = Math.floor(v + 0.5);
    if (whole >= 1024 && i < UNITS.length - 1) {
      v /= 1024;
      i += 1;
      continue;
    }
    return `${whole} ${UNITS[i]}`;
  }
}

/** Bytes/s → "10.0 MiB/s"; unknown or below zero → "0 B/s" (as units.format_rate). */
export function formatRate(bps) {
  if (bps === null || bps === undefined || typeof bps === 'boolean') return formatBytes(0) + '/s';
  const v = Number(bps);
  return `${formatBytes(Number.isFinite(v) && v >= 0 ? v : 0)}/s`;
}

/** The popup's speed: "" when nothing moves, else formatRate. */
export function formatSpeed(bps) {
  if (!bps || bps <= 0) return '';
  return formatRate(bps);
}

/** Seconds → "45 s", "3 min 5 s", "2 h 10 min"; null → "". */
export function formatEta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** 0–100, or null when the size is unknown. */
export function percent(done, size) {
  if (!size || size <= 0) return null;
  return Math.max(0, Math.min(100, (100 * (done ?? 0)) / size));
}

/** "5 MiB/s" / "5 MB/s" / "5M" / "500k" / "" (none) → bytes/s or null (binary multiples);
 * throws on anything else. */
export function parseRate(text) {
  const t = String(text ?? '').trim();
  if (!t || /^(none|unlimited|0)$/i.test(t)) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?(?:\/s)?$/i.exec(t);
  if (!m) throw new TypeError(`not a speed: ${JSON.stringify(t)} (try 2 MiB/s, 500 KiB/s or empty)`);
  const v = Math.round(Number(m[1]) * 1024 ** { '': 0, k: 1, m: 2, g: 3 }[m[2].toLowerCase()]);
  if (v < 1) throw new TypeError('a speed limit must be at least 1 byte/s');
  return v;
}

/** Which buttons a download in `state` offers (docs/PROTOCOL.md, "States"). */
export function actionsFor(state) {
  switch (state) {
    case 'active': case 'queued': return ['pause', 'cancel'];
    case 'paused': return ['resume', 'cancel'];
    case 'failed': return ['retry', 'remove'];
    case 'needs_refresh': return ['refresh', 'remove'];
    case 'completed': return ['open', 'reveal', 'remove'];
    case 'removed': return ['remove'];
    default: return [];
  }
}

/** Apply one daemon event to a Map of downloads (id → download); returns true when it changed. */
export function applyEvent(downloads, method, params) {
  switch (method) {
    case 'download.added':
      if (!params?.download) return false;
      downloads.set(params.download.id, { ...params.download });
      return true;
    case 'download.state': {
      const old = downloads.get(params.id) ?? { id: params.id };
      downloads.set(params.id, {
        ...old, ...(params.download ?? {}), state: params.state,
        error: params.error ?? params.download?.error ?? null,
      });
      return true;
    }
    case 'download.changed': { // the name and size the server gave, a new position...
      if (!params?.download) return false;
      const old = downloads.get(params.download.id) ?? {};
      // (its `done` is the stored one, older than the progress events': the larger is kept)
      downloads.set(params.download.id, {
        ...old, ...params.download, done: Math.max(old.done ?? 0, params.download.done ?? 0),
      });
      return true;
    }
    case 'download.progress':
      for (const p of params?.downloads ?? []) {
        const old = downloads.get(p.id);
        if (old) downloads.set(p.id, { ...old, ...p });
      }
      return true;
    case 'download.removed':
      return downloads.delete(params.id);
    default:
      return false;
  }
}

/** The page the popup's "Refresh link" opens for a download waiting for a fresh link: the page
 * it came from (the daemon's `referrer`), else its site's front page (the URL's origin); null
 * when neither is an http(s) URL (a page of another scheme is never opened from here). */
export function refreshPage(d) {
  for (const candidate of [d?.referrer, d?.url]) {
    let u;
    try {
      u = new URL(candidate);
    } catch {
      continue;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') continue;
    u.username = '';
    u.password = '';
    return candidate === d.referrer ? u.href : `${u.origin}/`;
  }
  return null;
}

/** What the popup tells the user once it opened that page. */
export function refreshHint(d) {
  const name = d?.name || 'the file';
  return `Click the link to ${name} on that page: Freight takes the new link for download #${d.id}`;
}
