// The only module that touches the browser's extension API (chrome.* in Chromium, browser.*
// in Firefox). Everything else imports these few functions, so that the rest of the code is
// the same in both browsers and the pure parts can run under `node --test`.

import { cookiesToSend } from './cookies.js';

const api = globalThis.browser ?? globalThis.chrome;

export const isFirefox = typeof globalThis.browser !== 'undefined'
  && typeof globalThis.browser.runtime?.getBrowserInfo === 'function';

/** Chromium lets an extension pick the file name (and hold the download meanwhile). */
export const canHoldDownloads = Boolean(api.downloads?.onDeterminingFilename);

export const selfId = api.runtime.id;
export const getURL = (path) => api.runtime.getURL(path);

// --- native messaging -----------------------------------------------------------------------

/**
 * Open a port to the native host, adapted to the shape rpc.js expects: onDisconnect listeners
 * receive the reason as a string (Chromium puts it in runtime.lastError, Firefox in port.error).
 */
export function connectNative(name) {
  const port = api.runtime.connectNative(name);
  return {
    postMessage: (msg) => port.postMessage(msg),
    disconnect: () => port.disconnect(),
    onMessage: { addListener: (fn) => port.onMessage.addListener((msg) => fn(msg)) },
    onDisconnect: {
      addListener: (fn) => port.onDisconnect.addListener((p) => {
        const reason = api.runtime.lastError?.message ?? p?.error?.message ?? '';
        fn(reason);
      }),
    },
  };
}

// --- storage --------------------------------------------------------------------------------

export async function getLocal(key, fallback) {
  const got = await api.storage.local.get(key);
  return got[key] ?? fallback;
}
export const setLocal = (key, value) => api.storage.local.set({ [key]: value });
export const removeLocal = (key) => api.storage.local.remove(key);

// storage.session survives a service-worker restart but not a browser restart: the right place
// for the worker's short-lived memory (recent hand-backs, links waiting for a refresh).
const session = api.storage.session ?? api.storage.local;
export async function getSession(key, fallback) {
  const got = await session.get(key);
  return got[key] ?? fallback;
}
export const setSession = (key, value) => session.set({ [key]: value });

export function onStorageChanged(fn) {
  api.storage.onChanged.addListener((changes, area) => fn(changes, area));
}

// --- downloads ------------------------------------------------------------------------------

export function onDeterminingFilename(fn) {
  api.downloads.onDeterminingFilename.addListener(fn);
}
export function onDownloadCreated(fn) {
  api.downloads.onCreated.addListener(fn);
}

/** Cancel a browser download and erase it from the browser's list; true when it was stopped. */
export async function cancelAndErase(id) {
  let stopped = true;
  try {
    await api.downloads.cancel(id);
  } catch {
    stopped = false;
  }
  const [item] = await api.downloads.search({ id }).catch(() => []);
  if (item && item.state === 'complete') stopped = false;
  if (stopped) await api.downloads.erase({ id }).catch(() => undefined);
  return stopped;
}

/** Start a download in the browser itself; resolves with its id. */
export function browserDownload(options) {
  return api.downloads.download(options);
}

export function cookieStoreFor(item) {
  if (item.cookieStoreId) return item.cookieStoreId; // Firefox (containers, private windows)
  if (isFirefox) return item.incognito ? 'firefox-private' : 'firefox-default';
  return item.incognito ? '1' : '0'; // Chromium: "0" normal profile, "1" its incognito twin
}

/**
 * The cookies the browser itself would attach to `request` (cookies.js's downloadRequest:
 * url, initiator, ...), HttpOnly ones included. getAll answers for the URL whoever asks, so
 * its answer is always narrowed by cookiesToSend: never a cookie the browser would withhold.
 */
export async function cookiesFor(request, storeId) {
  let all;
  try {
    all = await api.cookies.getAll({ url: request.url, storeId });
  } catch {
    all = await api.cookies.getAll({ url: request.url }).catch(() => []);
  }
  return cookiesToSend(all, request);
}

// --- web requests (observe only: form POSTs, and who started a navigation) -----------------

export function onPostNavigation(fn) {
  if (!api.webRequest?.onBeforeRequest) return;
  api.webRequest.onBeforeRequest.addListener(
    (details) => { if (details.method === 'POST') fn(details.url); },
    { urls: ['<all_urls>'], types: ['main_frame', 'sub_frame'] },
  );
}

/**
 * Observe (never block) the requests a download can come from: navigations of a tab or a frame,
 * and "other" (an `<a download>`, downloads.download()). `fn` gets {requestId, url, method,
 * type, initiator, ancestors}: `initiator` is the origin of the document that made the request
 * (Chromium's `initiator`, Firefox's `originUrl`), absent when the browser itself started it;
 * `ancestors` the URLs of the frames above the request's frame, or null when the browser does
 * not say. Firefox gives them (`frameAncestors`); Chromium tells only the parent frame's id,
 * so for a frame right below the top one `ancestors` is a promise of the tab's URL (deeper
 * frames stay null).
 */
export function onRequestStarted(fn) {
  if (!api.webRequest?.onBeforeRequest) return;
  api.webRequest.onBeforeRequest.addListener(
    (details) => {
      let ancestors = null;
      if (Array.isArray(details.frameAncestors)) ancestors = details.frameAncestors.map((f) => f.url);
      else if (details.type === 'main_frame' || (details.type === 'other' && details.frameId === 0)) ancestors = [];
      let initiator = details.initiator;
      if (initiator === undefined && details.originUrl) {
        try { initiator = new URL(details.originUrl).origin; } catch { initiator = 'null'; }
      }
      if (ancestors === null && details.parentFrameId === 0 && details.tabId >= 0) {
        ancestors = api.tabs.get(details.tabId).then(
          (tab) => (tab?.url ? [tab.url] : null),
          () => null, // the tab is gone: the request stays cross-site
        );
      }
      fn({
        requestId: details.requestId, url: details.url, method: details.method, type: details.type,
        initiator, ancestors,
      });
    },
    { urls: ['<all_urls>'], types: ['main_frame', 'sub_frame', 'other'] },
  );
}

// --- menus, commands, notifications, badge --------------------------------------------------

export async function resetMenus(items) {
  await api.contextMenus.removeAll();
  for (const item of items) {
    await new Promise((resolve) => {
      api.contextMenus.create(item, () => {
        void api.runtime.lastError; // "duplicate id" after a racing restart is harmless
        resolve();
      });
    });
  }
}
export const onMenuClicked = (fn) => api.contextMenus.onClicked.addListener(fn);
export const onCommand = (fn) => api.commands?.onCommand.addListener(fn);

export function notify(id, title, message) {
  return api.notifications.create(id, {
    type: 'basic', iconUrl: getURL('icons/128.png'), title, message,
  }).catch(() => undefined);
}
/** A notification with buttons where the browser has them (Chromium); Firefox's has none
 * and refuses the option, so it gets the plain one (a click on it is the first choice). */
export function notifyChoices(id, title, message, buttons) {
  if (isFirefox) return notify(id, title, message);
  return api.notifications.create(id, {
    type: 'basic', iconUrl: getURL('icons/128.png'), title, message, buttons,
    requireInteraction: true,
  }).catch(() => undefined);
}
export const onNotificationButton = (fn) => api.notifications.onButtonClicked?.addListener(fn);
export const clearNotification = (id) => api.notifications.clear(id).catch(() => undefined);
export const onNotificationClicked = (fn) => api.notifications.onClicked.addListener(fn);

export function setBadge(text, color) {
  const action = api.action ?? api.browserAction;
  action.setBadgeText({ text }).catch(() => undefined);
  if (color) action.setBadgeBackgroundColor({ color }).catch(() => undefined);
}

// --- lifecycle and messages -----------------------------------------------------------------

export const onInstalled = (fn) => api.runtime.onInstalled.addListener(fn);
export const onStartup = (fn) => api.runtime.onStartup.addListener(fn);
export const onConnect = (fn) => api.runtime.onConnect.addListener(fn);
export const onMessage = (fn) => api.runtime.onMessage.addListener(fn);

/** A page of this extension (popup, options, picker), as opposed to a web page or another add-on. */
export function isOwnPage(sender) {
  return sender?.id === selfId && String(sender?.url ?? '').startsWith(getURL(''));
}

// Pages (popup, options, picker) talk to the background through these two.
export const connect = (name) => api.runtime.connect({ name });
export const sendMessage = (msg) => api.runtime.sendMessage(msg);

export const openTab = (url) => api.tabs.create({ url });
export const getTab = (tabId) => api.tabs.get(tabId);
export const openOptions = () => api.runtime.openOptionsPage();

/** Open the popup when the browser allows it (needs a user gesture in some), else a tab. */
export async function openPopup() {
  try {
    await api.action.openPopup();
  } catch {
    await openTab(getURL('popup.html'));
  }
}

/** Run `func` in a tab's top frame and return its result (used by the link picker). */
export async function runInTab(tabId, func) {
  const [res] = await api.scripting.executeScript({ target: { tabId }, func });
  return res?.result;
}
