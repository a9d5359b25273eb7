// The options page: shows and edits the capture rules, which are the daemon's settings
// (docs/ARCHITECTURE.md "Capture rules"). It reads them from the background, follows every
// change made elsewhere (the tray, the popup, `freight settings`, another browser) while the
// user is not editing, and saves through the background's set_settings: never only here.
// Bad input is reported and nothing is saved (rules.js checks every field, the daemon again).

import * as ext from './ext.js';
import {
  DEFAULT_RULES, formatRulesSize, normalizeRules, parseSize, rulesSourceText, splitList,
} from './rules.js';

const $ = (id) => document.getElementById(id);
let editing = false; // the user changed a field since the rules were last shown

function show(rules) {
  $('enabled').checked = rules.enabled;
  $('notify').checked = rules.notify;
  $('minSize').value = formatRulesSize(rules.minSize);
  $('alwaysTypes').value = rules.alwaysTypes.join(' ');
  $('neverTypes').value = rules.neverTypes.join(' ');
  $('neverSites').value = rules.neverSites.join('\n');
  editing = false;
}

function showSource(info) {
  const source = $('source');
  source.textContent = rulesSourceText(info);
  source.className = info?.source === 'daemon' ? 'help live' : 'help stale';
  source.dataset.source = info?.source ?? 'default';
}

function update(msg) {
  showSource(msg.rulesInfo);
  if (!editing) {
    try { show(normalizeRules(msg.rules)); } catch { show(DEFAULT_RULES); }
  }
}

async function save() {
  const msg = $('msg');
  try {
    const rules = normalizeRules({
      enabled: $('enabled').checked,
      notify: $('notify').checked,
      minSize: parseSize($('minSize').value || '0'),
      alwaysTypes: splitList($('alwaysTypes').value),
      neverTypes: splitList($('neverTypes').value),
      neverSites: splitList($('neverSites').value),
    });
    const res = await ext.sendMessage({ type: 'setRules', rules });
    if (!res?.ok) throw new Error(res?.error?.hint ?? res?.error?.message ?? 'not saved');
    show(res.result);
    msg.className = 'ok';
    msg.textContent = 'Saved in Freight: every browser and the tray follow it.';
  } catch (err) {
    msg.className = 'bad';
    msg.textContent = `Not saved: ${err.message}`;
  }
}

$('save').addEventListener('click', save);
document.body.addEventListener('input', () => { editing = true; });
document.body.addEventListener('change', () => { editing = true; });

// Live: the background sends {type: 'rules'} whenever the daemon's rules change.
const port = ext.connect('options');
port.onMessage.addListener((msg) => {
  if (msg.type === 'hello' || msg.type === 'rules') update(msg);
});
ext.sendMessage({ type: 'state' }).then((res) => { if (res?.ok) update(res.result); });
