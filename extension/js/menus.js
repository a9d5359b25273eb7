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

/** Send one URL chosen by the user (menu or picker); the browser gets it when Freight cannot. */
export async function addOne({ url, referrer }, tab) {
  const name = nameFromUrl(url);
  const item = { url, referrer, incognito: Boolean(tab?.incognito), cookieStoreId: tab?.cookieStoreId };
  let scheme = '';
  try { scheme = new URL(url).protocol; } catch { /* reported below */ }
  if (scheme !== 'http:' && scheme !== 'https:') {
    remember(name, url, 'browser', `${scheme || 'this'} URLs stay in the browser`);
    if (scheme) await handBack(url, '', item.incognito);
    return null;
  }
  try {
    const id = await sendToDaemon({ action: 'add' }, await paramsFor(item, ext.cookieStoreFor(item)));
    remember(name, url, 'freight', `#${id}`);
    return id;
  } catch (err) {
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
