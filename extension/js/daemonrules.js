// The capture rules in force: the daemon's settings (docs/ARCHITECTURE.md "Capture rules").
//
// Read with get_settings when the port connects, followed through settings.changed, and kept
// in storage.local (RULES_KEY) for the times the daemon cannot be reached. This module is
// the one owner of `rules` and `rulesInfo`; others read them through rulesNow() and
// rulesInfoNow() and change them only through the daemon (writeSettings).

import { rpc } from './daemon.js';
import * as ext from './ext.js';
import { DEFAULT_RULES, rulesFromSettings, settingsFromRules } from './rules.js';

const RULES_KEY = 'daemonRules';
const OLD_RULES_KEY = 'rules'; // per-browser rules of older versions: dropped at start

let rules = { ...DEFAULT_RULES };
// Where `rules` came from: 'daemon' (read from it, and followed through settings.changed
// while connected), 'stored' (the last ones it sent, kept in storage.local RULES_KEY),
// 'default' (it was never reached). `at`: when the daemon sent them.
let rulesInfo = { source: 'default', at: 0 };
let changed = () => {};

export const rulesNow = () => rules;
export const rulesInfoNow = () => rulesInfo;

/** Called after every change of the rules in force (the badge, open pages follow them). */
export function onRulesChanged(listener) {
  changed = listener;
}

/** Worker start: the last rules the daemon sent, until it answers again. */
export async function loadRules() {
  // Rules an older version kept per browser are dropped, not sent to the daemon: with two
  // browsers, one would silently overwrite the other's (docs/HOST.md "Capture rules").
  await ext.removeLocal(OLD_RULES_KEY);
  adoptStoredRules(await ext.getLocal(RULES_KEY, null));
}

/** storage.onChanged: our own writes come back here with the rules we hold already; anything
 * else (another of our pages, a test) is last-known rules to follow until the daemon answers. */
export function followStoredRules(changes, area) {
  if (area === 'local' && changes[RULES_KEY] && rulesInfo.source !== 'daemon') {
    adoptStoredRules(changes[RULES_KEY].newValue);
  }
}

function adoptStoredRules(stored) {
  try {
    rules = rulesFromSettings(stored?.settings ?? {});
    rulesInfo = stored?.settings ? { source: 'stored', at: Number(stored.at) || 0 } : { source: 'default', at: 0 };
  } catch {
    rules = { ...DEFAULT_RULES };
    rulesInfo = { source: 'default', at: 0 };
  }
  changed();
}

/** The daemon's settings (all, from get_settings / set_settings / settings.changed) → the
 * rules in force now, and kept for the times the daemon cannot be reached. */
export async function adoptDaemonSettings(settings) {
  try {
    rules = rulesFromSettings(settings, rules);
  } catch {
    return; // a daemon that sends a bad rule is not followed; the last good rules stay
  }
  rulesInfo = { source: 'daemon', at: Date.now() };
  changed();
  await ext.setLocal(RULES_KEY, { settings: settingsFromRules(rules), at: rulesInfo.at });
}

/** Make the rules the daemon's own before a download is decided: a worker just woken, or
 * one that lost the daemon, may hold rules changed meanwhile. Returns the error when the
 * daemon cannot be asked (the last known rules then decide), else null. */
export async function freshRules() {
  if (rulesInfo.source === 'daemon') return null;
  try {
    await adoptDaemonSettings((await rpc.request('get_settings')).settings);
    return null;
  } catch (err) {
    return err;
  }
}

/** Rules lost their link to the daemon: they are the last known ones until it answers. */
export function rulesStale() {
  if (rulesInfo.source !== 'daemon') return;
  rulesInfo = { ...rulesInfo, source: 'stored' };
  changed();
}

/** Change rules the way every other control does: set_settings in the daemon, which tells
 * every browser (settings.changed). `changes`: the daemon's names, only those meant (a
 * toggle must not write back other rules this worker may hold from before). Throws, saving
 * nothing, when the daemon says no or cannot be reached. */
export async function writeSettings(changes) {
  const { settings } = await rpc.request('set_settings', { settings: changes });
  await adoptDaemonSettings(settings);
  return rules;
}

/** Capture on ↔ off; resolves with the new state. */
export async function toggleCapture() {
  await freshRules(); // flip what is in force now, not what this worker last heard
  return (await writeSettings({ capture: !rules.enabled })).enabled;
}
