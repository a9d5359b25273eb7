// A JSON-RPC 2.0 client over one native-messaging port (docs/PROTOCOL.md).
//
// No browser API is touched here: the caller passes `connect()`, which returns a port with
// `postMessage(obj)`, `onMessage.addListener(fn(obj))`, `onDisconnect.addListener(fn(reason))`
// and `disconnect()`. ext.js adapts chrome.runtime.connectNative to that shape; the tests pass
// a fake. Timers are injectable for the same reason.
//
// Theory of operation:
// - One port at a time. It is opened lazily by the first request (or by `start()`), and the
//   handshake requests (host.hello, subscribe) go first; every other request waits for them.
// - Pending requests live in a Map keyed by id. When the port disconnects, every one of them is
//   rejected at once with HOST_UNAVAILABLE: a caller never waits for an answer that cannot come.
// - While `start()` is in force, a lost port is reopened with exponential backoff, so that
//   daemon events keep flowing to the popup and notifications. A request made meanwhile opens
//   the port immediately instead of waiting for the timer.
// - `status` tells the truth about the daemon, not only about the port: a DAEMON_UNAVAILABLE
//   answer to any request, or the host's `host.daemon {connected: false}`, makes it
//   `daemon_unavailable` with the host's reason and fix (docs/PROTOCOL.md), and the next
//   request runs the handshake again (host.hello starts the daemon when it can).

/**
 * Every JSON-RPC error code the extension names (docs/PROTOCOL.md, "Error codes"), by the
 * names of freight.rpc.CODES; a test holds each one to that table. No other module writes a
 * code as a number: they import it from here.
 */
export const CODES = Object.freeze({
  INTERNAL_ERROR: -32603, // what an error without a usable code is taken for
  DAEMON_UNAVAILABLE: -32010, // from the host: no daemon and it could not be started
  HOST_UNAVAILABLE: -32011, // local: the native host is missing, crashed or exited
  TIMEOUT: -32012, // local: no answer in time
});
export const { DAEMON_UNAVAILABLE, HOST_UNAVAILABLE, TIMEOUT } = CODES;

export class RpcError extends Error {
  constructor(code, message, data = {}) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data ?? {};
  }

  /** True when Freight could not be reached at all, as opposed to refusing the request. */
  get unavailable() {
    return this.code === DAEMON_UNAVAILABLE || this.code === HOST_UNAVAILABLE;
  }
}

export class RpcClient {
  #connect;
  #port = null;
  #nextId = 1;
  #pending = new Map(); // id → {resolve, reject, timer, method}
  #ready = null; // Promise of the handshake results on the current port
  #wanted = false;
  #retryTimer = null;
  #failures = 0;
  #handshaken = false; // the handshake on the current port has completed
  #timers;
  #opts;
  status = { state: 'idle', reason: '', fix: '' };

  /**
   * @param {object} o
   * @param {() => object} o.connect          opens a port (throws or disconnects on failure)
   * @param {Array<{method, params}>} [o.handshake]  sent first on every new port
   * @param {(method, params) => void} [o.onNotification]
   * @param {(status) => void} [o.onStatus]   {state, reason, hello}
   * @param {number} [o.timeoutMs]            per request
   * @param {number} [o.backoffMs] [o.maxBackoffMs]
   * @param {object} [o.timers]               {setTimeout, clearTimeout}
   */
  constructor(o) {
    if (typeof o?.connect !== 'function') throw new TypeError('connect must be a function');
    this.#connect = o.connect;
    this.#timers = o.timers ?? globalThis;
    this.#opts = {
      handshake: o.handshake ?? [],
      onNotification: o.onNotification ?? (() => {}),
      onStatus: o.onStatus ?? (() => {}),
      timeoutMs: o.timeoutMs ?? 30000,
      backoffMs: o.backoffMs ?? 500,
      maxBackoffMs: o.maxBackoffMs ?? 30000,
    };
  }

  get pendingCount() {
    return this.#pending.size;
  }

  get connected() {
    return this.#port !== null;
  }

  /** Keep a port open (reconnecting with backoff) until stop(). Returns the handshake promise. */
  start() {
    this.#wanted = true;
    return this.#ensureReady().catch(() => undefined);
  }

  stop() {
    this.#wanted = false;
    this.#clearRetry();
    if (this.#port) {
      const port = this.#port;
      this.#lost('closed by the extension');
      try { port.disconnect(); } catch { /* already gone */ }
    }
  }

  /** Send a request; resolves with `result`, rejects with RpcError. */
  async request(method, params = {}, { timeoutMs } = {}) {
    if (typeof method !== 'string' || !method) throw new TypeError('method must be a name');
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw new TypeError('params must be an object (by name)');
    }
    await this.#ensureReady();
    return this.#send(method, params, timeoutMs);
  }

  /** Run the handshake again now (host.hello may start the daemon), unless one is running. */
  recheck() {
    this.#wanted = true;
    this.#failures = 0;
    if (this.#port && this.#ready && !this.#handshaken) return this.#ready; // one in flight
    if (this.status.state !== 'connected') {
      this.#ready = null;
      this.#handshaken = false;
    }
    return this.#ensureReady();
  }

  /** What the host said about the daemon, as status fields: reason, fix, cause, port. */
  static #why(err) {
    const data = err?.data ?? {};
    const out = { fix: typeof data.fix === 'string' ? data.fix : '' };
    if (typeof data.cause === 'string') out.cause = data.cause;
    if (Number.isInteger(data.port)) out.port = data.port;
    return out;
  }

  #setStatus(state, reason = '', hello = undefined, why = {}) {
    this.status = { state, reason, fix: '', ...why, ...(hello ? { hello } : {}) };
    try { this.#opts.onStatus(this.status); } catch { /* a listener's bug is not ours */ }
  }

  #ensureReady() {
    if (this.#port && this.#ready) return this.#ready;
    this.#clearRetry();
    if (!this.#port && !this.#attach()) return this.#ready;
    const port = this.#port;
    this.#handshaken = false;
    this.#ready = this.#handshake(port);
    // A failed handshake (say the daemon is down) is not remembered: the next request or the
    // retry timer runs it again on the same port.
    this.#ready.catch((err) => {
      if (this.#port !== port) return; // the port died; #lost already reported it
      this.#ready = null;
      const reason = err?.data?.reason || err?.message || String(err);
      this.#setStatus(err?.code === DAEMON_UNAVAILABLE ? 'daemon_unavailable' : 'error', reason,
        undefined, RpcClient.#why(err));
      this.#scheduleRetry();
    });
    return this.#ready;
  }

  /** Open a port; false (with #ready rejected and a retry scheduled) when that throws. */
  #attach() {
    this.#setStatus('connecting');
    let port;
    try {
      port = this.#connect();
    } catch (err) {
      const reason = String(err?.message ?? err);
      this.#ready = Promise.reject(new RpcError(HOST_UNAVAILABLE, reason, { kind: 'host_unavailable', reason }));
      this.#ready.catch(() => {});
      this.#port = null;
      this.#setStatus('host_unavailable', reason);
      this.#scheduleRetry();
      return false;
    }
    this.#port = port;
    port.onMessage.addListener((msg) => { if (this.#port === port) this.#receive(msg); });
    port.onDisconnect.addListener((reason) => {
      if (this.#port === port) this.#lost(reason || 'the native host exited');
    });
    return true;
  }

  async #handshake(port) {
    const results = [];
    for (const { method, params } of this.#opts.handshake) {
      results.push(await this.#send(method, params ?? {}, undefined, port));
    }
    this.#failures = 0;
    if (this.#port === port) this.#handshaken = true;
    this.#setStatus('connected', '', results[0]);
    return results;
  }

  #send(method, params, timeoutMs, port = this.#port) {
    if (!port) {
      return Promise.reject(new RpcError(HOST_UNAVAILABLE, 'not connected', { kind: 'host_unavailable' }));
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const ms = timeoutMs ?? this.#opts.timeoutMs;
      const timer = this.#timers.setTimeout(() => {
        if (!this.#pending.delete(id)) return;
        reject(new RpcError(TIMEOUT, `${method}: no answer after ${ms} ms`, { kind: 'timeout' }));
      }, ms);
      this.#pending.set(id, { resolve, reject, timer, method });
      try {
        port.postMessage({ jsonrpc: '2.0', id, method, params });
      } catch (err) {
        this.#pending.delete(id);
        this.#timers.clearTimeout(timer);
        reject(new RpcError(HOST_UNAVAILABLE, String(err?.message ?? err), { kind: 'host_unavailable' }));
      }
    });
  }

  #receive(msg) {
    if (msg === null || typeof msg !== 'object') return; // not JSON-RPC: ignore, never crash
    if (msg.id === undefined || msg.id === null) {
      if (msg.method === 'host.daemon') this.#daemonLink(msg.params ?? {});
      if (typeof msg.method === 'string') {
        try { this.#opts.onNotification(msg.method, msg.params ?? {}); } catch { /* listener bug */ }
      }
      return;
    }
    const entry = this.#pending.get(msg.id);
    if (!entry) return; // late answer to a request that timed out
    this.#pending.delete(msg.id);
    this.#timers.clearTimeout(entry.timer);
    if (msg.error) {
      const e = msg.error;
      const err = new RpcError(Number(e.code) || CODES.INTERNAL_ERROR, String(e.message ?? 'error'), e.data);
      if (err.code === DAEMON_UNAVAILABLE && this.#handshaken) this.#daemonLost(err);
      entry.reject(err);
    } else {
      entry.resolve(msg.result);
    }
  }

  /** A request after the handshake found no daemon: say so, and shake hands again next time. */
  #daemonLost(err) {
    this.#ready = null;
    this.#handshaken = false;
    this.#setStatus('daemon_unavailable', err.data?.reason || err.message, undefined, RpcClient.#why(err));
    this.#scheduleRetry();
  }

  /** The host's word on its link to the daemon (`host.daemon`, docs/PROTOCOL.md). */
  #daemonLink(params) {
    if (!this.#handshaken) return;
    if (params.connected === false) {
      this.#setStatus('daemon_unavailable', 'the daemon stopped', undefined, { fix: 'freight start' });
    } else if (params.connected === true) {
      this.#setStatus('connected', '', this.status.hello);
    }
  }

  #lost(reason) {
    this.#port = null;
    this.#ready = null;
    this.#handshaken = false;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      this.#timers.clearTimeout(p.timer);
      p.reject(new RpcError(HOST_UNAVAILABLE, `${p.method}: ${reason}`, { kind: 'host_unavailable', reason }));
    }
    this.#setStatus('host_unavailable', reason);
    this.#scheduleRetry();
  }

  #scheduleRetry() {
    if (!this.#wanted || this.#retryTimer) return;
    const delay = Math.min(this.#opts.maxBackoffMs, this.#opts.backoffMs * 2 ** this.#failures);
    this.#failures += 1;
    this.#retryTimer = this.#timers.setTimeout(() => {
      this.#retryTimer = null;
      if (this.#wanted && !(this.#port && this.#ready)) this.#ensureReady().catch(() => {});
    }, delay);
  }

  #clearRetry() {
    if (this.#retryTimer) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }
}
