// The context menu ("Download with Freight", "Download all links with Freight…") and the
// links the picker offers: a URL the user chose goes to the daemon without the capture rules
// (it is an explicit choice); the browser gets it when Freight cannot take it.

import { explain, paramsFor, remember, sendToDaemon } from './capture.js';
import * as ext from './ext.js';
import { handBack } from './handback.js';
import { nameFromUrl } from './rules.js';

export function installMenus() {
  ext.resetMenus([
    { id: 'freight-one', title: 'Download with Freight', contexts: ['link', 'image', 'video', 'audio'] },
    { id: 'freight-all', title: 'Download all links with Freight…', contexts: ['page', 'selection'] },
  ]);
}

export async function onMenu(info, tab) {
  if (info.menuItemId === 'freight-all') {
    if (tab?.id !== undefined) await ext.openTab(ext.getURL(`picker.html?tab=${tab.id}`));
    return;
  }
  if (info.menuItemId !== 'freight-one') return;
  const url = info.linkUrl || info.srcUrl;
  await addOne({ url, referrer: info.pageUrl }, tab);
}

/** How many of the picker's links are on their way to the daemon at once. */
const ADD_WIDTH = 8;

/** The picker's links, each as addOne; resolves with their ids (null: left to the browser)
 * in the same order. Several are on their way at once (each `add` waits for the daemon's
 * answer), but they are sent in the order given, so the daemon queues them in page order. */
export async function addMany(items, tab, width = ADD_WIDTH) {
  const ids = new Array(items.length).fill(null);
  let turn = Promise.resolve(); // resolves once the item before has been sent
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      const before = turn;
      let sent;
      turn = new Promise((resolve) => { sent = resolve; });
      ids[i] = await addOne(items[i], tab, before, sent);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return ids;
}

/** Send one URL chosen by the user (menu or picker); the browser gets it when Freight cannot.
 * `before`: wait for it before sending (the picker's order); `sent()`: called once sent. */
export async function addOne({ url, referrer }, tab, before = null, sent = () => {}) {
  const name = nameFromUrl(url);
  const item = { url, referrer, incognito: Boolean(tab?.incognito), cookieStoreId: tab?.cookieStoreId };
  let scheme = '';
  try { scheme = new URL(url).protocol; } catch { /* reported below */ }
  if (scheme !== 'http:' && scheme !== 'https:') {
    await before;
    sent();
    remember(name, url, 'browser', `${scheme || 'this'} URLs stay in the browser`);
    if (scheme) await handBack(url, '', item.incognito);
    return null;
  }
  try {
    const params = await paramsFor(item, ext.cookieStoreFor(item));
    await before;
    const sending = sendToDaemon({ action: 'add' }, params); // the request goes out now
    sent();
    const id = await sending;
    remember(name, url, 'freight', `#${id}`);
    return id;
  } catch (err) {
    await before;
    sent();
    remember(name, url, 'browser', explain(err));
    await handBack(url, '', item.incognito);
    return null;
  }
}

// Runs inside the web page (scripting.executeScript): every link and media source.
export function collectPageLinks() {
  const seen = new Set();
  const out = [];
  const push = (url, text, kind) => {
    if (!url || seen.has(url) || !/^https?:/i.test(url)) return;
    seen.add(url);
    out.push({ url, text: (text || '').trim().slice(0, 200), kind });
  };
  for (const a of document.querySelectorAll('a[href]')) push(a.href, a.textContent || a.title, 'link');
  for (const m of document.querySelectorAll('img[src], video[src], audio[src], source[src]')) {
    push(m.src, m.alt || m.title, m.tagName.toLowerCase());
  }
  return { links: out, page: location.href, title: document.title };
}
