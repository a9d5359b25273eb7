// "Download all links with Freight…": lists the links of the tab the menu was used on,
// filtered by kind and extension; the selected ones go to the daemon through the background.

import * as ext from './ext.js';
import { filterLinks, nameFromUrl } from './rules.js';

const $ = (id) => document.getElementById(id);
const tabId = Number(new URLSearchParams(location.search).get('tab'));
let links = [];
let page = '';
const unchecked = new Set();

function render() {
  const shown = filterLinks(links, { kind: $('kind').value, exts: $('exts').value });
  $('rows').replaceChildren(...shown.map((l) => {
    const tr = document.createElement('tr');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = !unchecked.has(l.url);
    box.addEventListener('change', () => (box.checked ? unchecked.delete(l.url) : unchecked.add(l.url)));
    const name = document.createElement('td');
    name.textContent = nameFromUrl(l.url) || l.text || l.url;
    const url = document.createElement('td');
    url.className = 'url';
    url.textContent = l.url;
    url.title = l.url;
    const c = document.createElement('td');
    c.append(box);
    tr.append(c, name, url);
    return tr;
  }));
  $('msg').textContent = `${shown.length} of ${links.length} links`;
  $('msg').className = '';
  return shown;
}

async function load() {
  const res = await ext.sendMessage({ type: 'collectLinks', tabId });
  if (!res?.ok) {
    $('msg').className = 'bad';
    $('msg').textContent = `Cannot read that page: ${res?.error?.message ?? 'no answer'}`;
    return;
  }
  links = res.result.links;
  page = res.result.page;
  $('page').textContent = `${res.result.title || ''} — ${page}`;
  render();
}

$('kind').addEventListener('change', render);
$('exts').addEventListener('input', render);
$('all').addEventListener('click', () => { unchecked.clear(); render(); });
$('none').addEventListener('click', () => { for (const l of links) unchecked.add(l.url); render(); });
$('send').addEventListener('click', async () => {
  const chosen = filterLinks(links, { kind: $('kind').value, exts: $('exts').value })
    .filter((l) => !unchecked.has(l.url));
  if (!chosen.length) return;
  const res = await ext.sendMessage({
    type: 'addMany', tabId, items: chosen.map((l) => ({ url: l.url, referrer: page })),
  });
  const ids = res?.ok ? res.result : [];
  const taken = ids.filter((id) => id !== null).length;
  $('msg').className = taken === chosen.length ? 'ok' : 'bad';
  $('msg').textContent = `${taken} sent to Freight${taken < chosen.length
    ? `, ${chosen.length - taken} given to the browser (see the popup)` : ''}.`;
});

load();
