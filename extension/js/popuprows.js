// The popup's list of downloads on screen: one row per download, changed in place. Whoever
// changes a download marks it (mark); at most once per frame (schedule) the marked rows are
// filled again, and the rows are put in order only when downloads came or went. A row whose
// download shows the same as before is not touched, so that one event about one download
// costs one row, not the whole list (300 downloads sent at once each send several events).

import { actionsFor, formatBytes, formatEta, formatSpeed, percent } from './format.js';
import { nameFromUrl } from './rules.js';

export const LABELS = {
  pause: 'Pause', resume: 'Resume', cancel: 'Cancel', retry: 'Retry', remove: 'Remove',
  open: 'Open', reveal: 'Show in folder', refresh: 'Refresh link',
};
const STATE_NAMES = { needs_refresh: 'link expired' };

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Newest first; the daemon's id breaks a tie (downloads added within one clock tick). */
function newestFirst(a, b) {
  return (b.created_at ?? 0) - (a.created_at ?? 0) || b.id - a.id;
}

export class RowList {
  /** `main`: the element holding the rows; `downloads`: the Map (id → download) shown;
   * `after()`: what else to draw once the rows are drawn (header, notes). */
  constructor(main, downloads, after) {
    this.main = main;
    this.downloads = downloads;
    this.after = after;
    this.rows = new Map(); // id → row element
    this.dirty = new Set(); // ids whose row must be filled again
    this.reorder = true; // downloads came or went: put the rows in order
    this.pending = 0;
    this.firstRows = false;
  }

  get(id) {
    return this.rows.get(id);
  }

  /** Download `id` changed; `structural`: it came or went. */
  mark(id, structural = false) {
    this.dirty.add(id);
    if (structural || !this.rows.has(id)) this.reorder = true;
  }

  /** Every row again (a new list from the daemon). */
  markAll() {
    for (const id of this.downloads.keys()) this.dirty.add(id);
    this.reorder = true;
  }

  /** Draw at the next frame, once however many changes come before it. A hidden page gets
   * no frames: the timer draws it then (it is slowed down, not stopped). */
  schedule() {
    if (this.pending) return;
    const run = () => this.draw();
    this.pending = requestAnimationFrame(run);
    this.timer = setTimeout(run, 200);
  }

  draw() {
    cancelAnimationFrame(this.pending);
    clearTimeout(this.timer);
    this.pending = 0;
    const { downloads, rows, main } = this;
    for (const id of this.dirty) {
      const d = downloads.get(id);
      const r = rows.get(id);
      if (!d) {
        r?.remove();
        rows.delete(id);
      } else if (r) {
        fill(r, d);
      }
    }
    if (this.reorder) {
      const list = [...downloads.values()].sort(newestFirst);
      list.forEach((d, i) => {
        let r = rows.get(d.id);
        if (!r) {
          rows.set(d.id, r = row(d.id));
          fill(r, d);
        }
        if (main.children[i] !== r) main.insertBefore(r, main.children[i] ?? null);
      });
      this.reorder = false;
    }
    this.dirty.clear();
    if (!this.firstRows && rows.size) {
      this.firstRows = true;
      performance.mark('freight-first-rows'); // bench/popup_paint.py reads it
    }
    this.after();
  }
}

function row(id) {
  const r = el('div', 'dl');
  r.dataset.id = id;
  const top = el('div', 'top');
  top.append(el('span', 'name'), el('span', 'pill'));
  const bar = el('div', 'bar');
  bar.append(el('div'));
  r.append(top, bar, el('div', 'meta'), el('div', 'err'), el('div', 'actions'));
  return r;
}

const shownMeta = new WeakMap(); // .meta box → the text it shows

/** Set a property only when it changes: an unchanged row stays untouched. */
function put(node, key, value) {
  if (node[key] !== value) node[key] = value;
}

function fill(r, d) {
  const name = r.querySelector('.name');
  put(name, 'textContent', d.name || nameFromUrl(d.url) || d.url);
  put(name, 'title', d.path || d.url || '');
  const pill = r.querySelector('.pill');
  put(pill, 'className', `pill ${d.state}`);
  put(pill, 'textContent', STATE_NAMES[d.state] ?? d.state);
  const pct = d.state === 'completed' ? 100 : percent(d.done, d.size);
  const bar = r.querySelector('.bar');
  put(bar, 'className', `bar ${d.state}${pct === null && d.state === 'active' ? ' unknown' : ''}`);
  const width = `${pct ?? 0}%`;
  if (bar.firstChild.style.width !== width) bar.firstChild.style.width = width;
  const meta = [
    d.size ? `${formatBytes(d.done)} of ${formatBytes(d.size)}` : formatBytes(d.done ?? 0),
    pct !== null && d.state !== 'completed' ? `${Math.floor(pct)}%` : '',
    d.state === 'active' ? formatSpeed(d.speed) : '',
    d.state === 'active' && d.eta !== null && d.eta !== undefined ? `${formatEta(d.eta)} left` : '',
    d.state === 'active' && d.connections ? `${d.connections} conn.` : '',
  ].filter(Boolean);
  const box = r.querySelector('.meta');
  if (shownMeta.get(box) !== meta.join('\n')) {
    shownMeta.set(box, meta.join('\n'));
    box.replaceChildren(...meta.map((m) => el('span', '', m)));
  }
  put(r.querySelector('.err'), 'textContent',
    d.state === 'failed' || d.state === 'needs_refresh' ? (d.error ?? '') : '');
  if (d.state !== 'needs_refresh') r.querySelector('.hint')?.remove(); // the wait is over
  const actions = r.querySelector('.actions');
  if (actions.dataset.state !== d.state) {
    actions.dataset.state = d.state;
    actions.replaceChildren(...actionsFor(d.state).map((a) => {
      const b = el('button', a === 'refresh' ? 'primary' : '', LABELS[a]);
      b.dataset.action = a;
      return b;
    }));
  }
}
