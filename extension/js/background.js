// The service worker (Chromium) / background script (Firefox): the wiring. Each job lives in
// its own module, which owns its state and exports the functions that change it:
// capture.js (a browser download: decide, hand over), handback.js (downloads given back to
// the browser), daemonrules.js (the capture rules, the daemon's settings), waiting.js
// (downloads waiting for a fresh link), notices.js (badge, notifications, this browser's
// own downloads), menus.js (context menu, picker), pages.js (popup, options, picker
// messages), cancels.js (the popup's Cancel, held for its Undo), daemon.js (the one JSON-RPC
// client).
//
// MV3 rules this file follows (as uBlock Origin Lite's background.js does):
// - every listener is registered synchronously at the top level here, so that an event that
//   wakes a stopped worker (a download click) finds its listener at once;
// - every listener awaits the one `ready` promise before it reads state;
// - the worker's memory is rebuilt from storage on every start: nothing important lives only
//   in a variable (the daemon holds the downloads and the capture rules; storage keeps the
//   rules last read from it, and recent events);
// - messages from our own pages go through one switch (pages.js), after checking the sender.

import {
  captureAfterCancel, captureHeld, loadRecent, notePostNavigation, noteRequest, onRecentChanged,
  plan, recentNow,
} from './capture.js';
import { onCancelsChanged } from './cancels.js';
import { onDaemon, rpc } from './daemon.js';
import { chooseDuplicate, isDuplicateNote } from './duplicate.js';
import {
  adoptDaemonSettings, followStoredRules, freshRules, loadRules, onRulesChanged, rulesInfoNow,
  rulesNow, rulesStale, toggleCapture,
} from './daemonrules.js';
import * as ext from './ext.js';
import { loadHandBacks } from './handback.js';
import { installMenus, onMenu } from './menus.js';
import {
  loadOwned, openNotified, ownedNow, refreshKnown, trackDownloadEvent, updateBadge,
} from './notices.js';
import { broadcast, errorInfo, handlePageMessage, onPagePort } from './pages.js';
import { loadWaiting, onWaitingChanged } from './waiting.js';

// --- what each change shows: badge, open pages ---------------------------------------------

onRulesChanged(() => {
  updateBadge();
  broadcast({ type: 'rules', rules: rulesNow(), rulesInfo: rulesInfoNow() });
});
onWaitingChanged((refreshWanted) => broadcast({ type: 'refreshWanted', refreshWanted }));
onRecentChanged((recent) => broadcast({ type: 'recent', recent }));
onCancelsChanged((cancelling) => broadcast({ type: 'cancelling', cancelling }));
onDaemon({ event: onDaemonEvent, status: onRpcStatus });

// --- listeners, all at top level ------------------------------------------------------------

if (ext.canHoldDownloads) {
  ext.onDeterminingFilename((item, suggest) => {
    captureHeld(item, suggest, ready);
    return true; // suggest() is called later, once the daemon has answered
  });
} else {
  ext.onDownloadCreated((item) => { captureAfterCancel(item, ready); });
}
ext.onPostNavigation((url) => { notePostNavigation(url); });
ext.onRequestStarted((req) => { noteRequest(req); });
ext.onMenuClicked((info, tab) => { ready.then(() => onMenu(info, tab)); });
ext.onCommand((command) => {
  if (command === 'toggle-capture') ready.then(toggleCapture).catch(() => undefined);
});
ext.onNotificationClicked((id) => {
  ready.then(() => (isDuplicateNote(id) ? chooseDuplicate(id, null) : openNotified(id)));
});
ext.onNotificationButton((id, index) => { ready.then(() => chooseDuplicate(id, index)); });
ext.onInstalled(() => { installMenus(); });
ext.onStartup(() => { installMenus(); });
ext.onStorageChanged((changes, area) => { followStoredRules(changes, area); });
ext.onConnect((port) => { onPagePort(port, ready); });
ext.onMessage((msg, sender, sendResponse) => {
  if (!ext.isOwnPage(sender)) return false; // web pages and other add-ons get nothing
  ready.then(() => handlePageMessage(msg)).then(
    (result) => sendResponse({ ok: true, result }),
    (err) => sendResponse({ ok: false, error: errorInfo(err) }),
  );
  return true;
});

const ready = init();

async function init() {
  await loadRules();
  await loadRecent();
  await loadWaiting();
  await loadOwned();
  await loadHandBacks();
  updateBadge();
  rpc.start(); // connect now: the port keeps the worker alive and brings live events
}

// --- the daemon's link and events → pages, rules, badge, notifications ----------------------

function onRpcStatus(status) {
  broadcast({ type: 'status', status });
  if (status.state === 'connected') refreshKnown();
  if (status.state === 'connected') freshRules();
  else rulesStale();
  updateBadge();
}

function onDaemonEvent(method, params) {
  broadcast({ type: 'event', method, params });
  if (method === 'settings.changed' && params.settings) adoptDaemonSettings(params.settings);
  if (method === 'host.daemon') { // the host lost the daemon, or found it again
    rulesStale();
    if (params.connected) freshRules();
  }
  trackDownloadEvent(method, params);
  updateBadge();
}

// Exposed for tests that drive the worker through Playwright's sw.evaluate().
globalThis.freight = {
  rpc, ready, plan: (item) => plan(item), rules: () => rulesNow(), rulesInfo: () => rulesInfoNow(),
  recent: () => recentNow(), owned: () => ownedNow(),
  // A notification's button, as the browser would report a click on it.
  chooseDuplicate: (id, index) => chooseDuplicate(id, index),
};
