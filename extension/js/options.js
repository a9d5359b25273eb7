// The options page: edits the capture rules kept in storage.local ("rules").
// Bad input is reported and nothing is saved (rules.js checks every field).

import * as ext from './ext.js';
import { DEFAULT_RULES, formatRulesSize, normalizeRules, parseSize, splitList } from './rules.js';

const $ = (id) => document.getElementById(id);

function show(rules) {
  $('enabled').checked = rules.enabled;
  $('notify').checked = rules.notify;
  $('minSize').value = formatRulesSize(rules.minSize);
  $('alwaysTypes').value = rules.alwaysTypes.join(' ');
  $('neverTypes').value = rules.neverTypes.join(' ');
  $('neverSites').value = rules.neverSites.join('\n');
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
    if (!res?.ok) throw new Error(res?.error?.message ?? 'not saved');
    show(res.result);
    msg.className = 'ok';
    msg.textContent = 'Saved.';
  } catch (err) {
    msg.className = 'bad';
    msg.textContent = `Not saved: ${err.message}`;
  }
}

$('save').addEventListener('click', save);
ext.getLocal('rules', DEFAULT_RULES).then((r) => {
  try { show(normalizeRules(r)); } catch { show(DEFAULT_RULES); }
});
