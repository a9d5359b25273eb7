// Our own pages (popup, options, picker): the ports that feed open pages with live events,
// and the messages they send. Only our own pages are heard (ext.isOwnPage); the daemon
// methods they may call through the background are named in PAGE_METHODS. This module owns
// the set of open ports.

import { cancelLater, cancellingNow, undoCancel } from './cancels.js';
import { addMany, collectPageLinks } from './menus.js';
import { explain, recentNow } from './capture.js';
import { rpc } from './daemon.js';
import { rulesInfoNow, rulesNow, toggleCapture, writeSettings } from './daemonrules.js';
import * as ext from './ext.js';
import { totalNow } from './notices.js';
import { waitingEntry } from './refresh.js';
import { RpcError } from './rpc.js';
import { normalizeRules, settingsFromRules } from './rules.js';
import { setWaiting, stopWaiting, waitingNow } from './waiting.js';

// Methods our pages may send to the daemon through the background (checked by name).
const PAGE_METHODS = new Set([
  'list', 'get', 'pause', 'resume', 'cancel', 'remove', 'open', 'set_limits', 'get_settings',
  'set_settings', 'status', 'pause_all', 'resume_all', 'move',
]);

const pagePorts = new Set(); // open popups, fed with live events

/** Send `msg` to every open page. */
export function broadcast(msg) {
  for (const port of pagePorts) {
    try { port.postMessage(msg); } catch { pagePorts.delete(port); }
  }
}

function pageState() {
  return {
    status: rpc.status, rules: rulesNow(), rulesInfo: rulesInfoNow(), recent: recentNow(),
    refreshWanted: waitingNow(), total: totalNow(), cancelling: cancellingNow(),
  };
}

/** A page connected: keep its port for live events, and greet it with the state, once ready. */
export async function onPagePort(port, ready) {
  if (!ext.isOwnPage(port.sender)) {
    port.disconnect();
    return;
  }
  pagePorts.add(port);
  port.onDisconnect.addListener(() => pagePorts.delete(port));
  await ready;
  port.postMessage({ type: 'hello', ...pageState() });
}

/** The reply's `error` for a page: what went wrong, with the user's words for daemon errors. */
export function errorInfo(err) {
  if (err instanceof RpcError) return { code: err.code, message: err.message, data: err.data, hint: explain(err) };
  return { code: 0, message: String(err?.message ?? err) };
}

/** One message from one of our pages (the sender is checked already); resolves with the
 * reply's result, throws for its error. */
export async function handlePageMessage(msg) {
  switch (msg?.type) {
    case 'rpc':
      if (!PAGE_METHODS.has(msg.method)) throw new Error(`method not allowed: ${msg.method}`);
      return rpc.request(msg.method, msg.params ?? {});
    case 'state':
      return pageState();
    case 'reconnect':
      // The popup's "Try again" (and its opening while the daemon is down): host.hello again,
      // which starts the daemon if it can, and the status says what happened.
      await rpc.recheck().catch(() => undefined);
      return rpc.status;
    case 'setRules':
      // The page's whole form, as the user saves it; bad input throws and nothing is saved.
      return writeSettings(settingsFromRules(normalizeRules(msg.rules)));
    case 'toggleCapture':
      return toggleCapture();
    case 'wantRefresh': {
      const { id } = msg;
      if (!Number.isSafeInteger(id)) throw new Error('wantRefresh needs the download\'s id');
      // The daemon's record, not the page's: the match needs its URL (refresh.js).
      const entry = waitingEntry(await rpc.request('get', { id }));
      await setWaiting([entry, ...waitingNow().filter((r) => r.id !== id)]);
      return waitingNow();
    }
    case 'cancelRefresh':
      await stopWaiting(msg.id);
      return waitingNow();
    case 'collectLinks':
      return ext.runInTab(Number(msg.tabId), collectPageLinks);
    case 'addMany': {
      if (!Array.isArray(msg.items)) throw new Error('addMany needs a list of items');
      const tab = msg.tabId !== undefined ? await ext.getTab(Number(msg.tabId)).catch(() => undefined) : undefined;
      return addMany(msg.items.map((it) => ({ url: String(it.url), referrer: it.referrer })), tab);
    }
    case 'cancelLater': // the popup's Cancel, sent once its Undo time is over (cancels.js)
      return cancelLater(msg.id);
    case 'undoCancel':
      return undoCancel(msg.id);
    case 'openOptions':
      return ext.openOptions();
    default:
      throw new Error(`unknown message ${JSON.stringify(msg?.type)}`);
  }
}
