// The popup's list of downloads on screen: one row per download, changed in place. Whoever
// changes a download marks it (mark); at most once per frame (schedule) the marked rows are
// filled again, and the rows are put in order only when downloads came or went. A row whose
// download shows the same as before is not touched, so that one event about one download
// costs one row, not the whole list (300 downloads sent at once each send several events).

import { actionsFor, formatBytes, formatEta, formatSpeed, percent } from './format.js';
import { displayName, formatWhen, fullDate, matchesSearch, popupOrder, shownState } from './popupview.js';

export const LABELS = {
  pause: 'Pause', resume: 'Resume', cancel: 'Cancel', retry: 'Retry', remove: 'Remove',
  open: 'Open', reveal: 'Show in folder', refresh: 'Refresh link', undo: 'Undo',
};

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export class RowList {
  /** `main`: the element holding the rows; `downloads`: the Map (id → download) shown;
   * `after()`: what else to draw once the rows are drawn (header, notes); `view`: what else a
   * row shows: `given` (id → the name the browser sent it with), `cancelling` (ids whose
   * cancel waits for its undo time), `query` (the search: rows that do not match are hidden),
   * `dates` (false until the first rows are drawn: see draw). */
  constructor(main, downloads, after, view) {
    this.main = main;
    this.downloads = downloads;
    this.after = after;
    this.view = view;
    this.rows = new Map(); // id → row element
    this.dirty = new Set(); // ids whose row must be filled again
    this.reorder = true; // downloads came or went: put the rows in order
    this.pending = 0;
    this.firstRows = false;
    this.shown = 0; // rows the search keeps
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
    // A changed name or state may change what a search keeps.
    if (this.view.query && this.dirty.size) this.reorder = true;
    for (const id of this.dirty) {
      const d = downloads.get(id);
      const r = rows.get(id);
      if (!d) {
        r?.remove();
        rows.delete(id);
      } else if (r) {
        // A row whose state or queue place changed may move (popupview.js popupOrder).
        if (r.dataset.order !== orderKey(d)) this.reorder = true;
        fill(r, d, this.view);
      }
    }
    if (this.reorder) {
      const list = [...downloads.values()].sort(popupOrder);
      this.shown = 0;
      list.forEach((d, i) => {
        let r = rows.get(d.id);
        if (!r) {
          rows.set(d.id, r = row(d.id));
          fill(r, d, this.view);
        }
        const hidden = !matchesSearch(d, this.view.query, displayName(d, this.view.given.get(d.id)));
        if (r.hidden !== hidden) r.hidden = hidden;
        if (!hidden) this.shown += 1;
        if (main.children[i] !== r) main.insertBefore(r, main.children[i] ?? null);
      });
      this.reorder = false;
    }
    this.dirty.clear();
    if (!this.firstRows && rows.size) {
      this.firstRows = true;
      performance.mark('freight-first-rows'); // bench/popup_paint.py reads it
    }
    // The rows' dates come at the next frame: the first local time the page works out costs
    // tens of ms (the time zone's data is loaded), which put the first rows later
    // (bench/popup_paint.py, medians of 7 loads: 136 ms with no dates, 203 ms with them).
    if (!this.view.dates && rows.size) {
      this.view.dates = true;
      this.markAll();
      this.schedule();
    }
    this.after();
  }
}

/** What decides a row's place: it moves when this changes. */
function orderKey(d) {
  return `${d.state} ${d.position} ${d.finished_at}`;
}

function row(id) {
  const r = el('div', 'dl');
  r.dataset.id = id;
  const top = el('div', 'top');
  top.append(el('span', 'name'), el('span', 'when muted'), el('span', 'pill'));
  const bar = el('div', 'bar');
  bar.append(el('div'));
  // The buttons beside the figures, not under them: more rows fit in the popup.
  const foot = el('div', 'foot');
  foot.append(el('div', 'meta'), el('div', 'actions'));
  r.append(top, bar, el('div', 'err'), foot);
  return r;
}

const shownMeta = new WeakMap(); // .meta box → the text it shows

/** Set a property only when it changes: an unchanged row stays untouched. */
function put(node, key, value) {
  if (node[key] !== value) node[key] = value;
}

/** The row's line under its bar: progress while it can still run; for a cancelled one its
 * size only (its partial data is deleted: what it had done is no longer there). */
function metaFor(d, cancelling) {
  if (cancelling) return ['Cancelled: its partial data is deleted in a few seconds'];
  if (d.state === 'removed') return [d.size ? formatBytes(d.size) : '', 'partial data deleted'].filter(Boolean);
  const pct = d.state === 'completed' ? 100 : percent(d.done, d.size);
  return [
    d.size ? `${formatBytes(d.done)} of ${formatBytes(d.size)}` : formatBytes(d.done ?? 0),
    pct !== null && d.state !== 'completed' ? `${Math.floor(pct)}%` : '',
    d.state === 'active' ? formatSpeed(d.speed) : '',
    d.state === 'active' && d.eta !== null && d.eta !== undefined ? `${formatEta(d.eta)} left` : '',
    d.state === 'active' && d.connections ? `${d.connections} conn.` : '',
  ].filter(Boolean);
}

function fill(r, d, view) {
  const cancelling = view.cancelling.has(d.id);
  const state = cancelling ? 'removed' : d.state;
  r.dataset.order = orderKey(d);
  const name = r.querySelector('.name');
  put(name, 'textContent', displayName(d, view.given.get(d.id)));
  put(name, 'title', d.path || d.url || '');
  // The date that says most: when it finished, else when it was added.
  const finished = d.state === 'completed' || d.state === 'removed';
  const at = finished && d.finished_at ? d.finished_at : d.created_at;
  const when = r.querySelector('.when');
  const key = `${finished && d.finished_at ? 'Finished' : 'Added'} ${at}`;
  if (view.dates && when.dataset.at !== key) { // (once a row, not at every progress)
    when.dataset.at = key;
    when.textContent = formatWhen(at);
    when.title = at ? `${key.split(' ')[0]} ${fullDate(at)}` : '';
  }
  const pill = r.querySelector('.pill');
  put(pill, 'className', `pill ${state}${cancelling ? ' cancelling' : ''}`);
  put(pill, 'textContent', shownState({ state }));
  const pct = state === 'completed' ? 100 : state === 'removed' ? 0 : percent(d.done, d.size);
  const bar = r.querySelector('.bar');
  put(bar, 'className', `bar ${state}${pct === null && state === 'active' ? ' unknown' : ''}`);
  const width = `${pct ?? 0}%`;
  if (bar.firstChild.style.width !== width) bar.firstChild.style.width = width;
  const meta = metaFor(d, cancelling);
  const box = r.querySelector('.meta');
  if (shownMeta.get(box) !== meta.join('\n')) {
    shownMeta.set(box, meta.join('\n'));
    box.replaceChildren(...meta.map((m) => el('span', '', m)));
  }
  put(r.querySelector('.err'), 'textContent',
    d.state === 'failed' || d.state === 'needs_refresh' ? (d.error ?? '') : '');
  if (d.state !== 'needs_refresh') r.querySelector('.hint')?.remove(); // the wait is over
  const actions = r.querySelector('.actions');
  const offered = cancelling ? 'cancelling' : d.state;
  if (actions.dataset.state !== offered) {
    actions.dataset.state = offered;
    actions.replaceChildren(...(cancelling ? ['undo'] : actionsFor(d.state)).map((a) => {
      const b = el('button', a === 'refresh' || a === 'undo' ? 'primary' : '', LABELS[a]);
      b.dataset.action = a;
      return b;
    }));
  }
}
