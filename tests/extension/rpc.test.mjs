// The JSON-RPC client (extension/js/rpc.js) over a fake native port. The port is the boundary
// with the browser, so a fake is the honest stand-in here; timers are fake so that backoff and
// timeouts are checked without sleeping.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DAEMON_UNAVAILABLE, HOST_UNAVAILABLE, RpcClient, RpcError, TIMEOUT,
} from '../../extension/js/rpc.js';

class FakePort {
  constructor() {
    this.sent = [];
    this.msgListeners = [];
    this.discListeners = [];
    this.closed = false;
  }
  postMessage(m) {
    if (this.closed) throw new Error('Attempting to use a disconnected port object');
    this.sent.push(m);
  }
  disconnect() { this.closed = true; }
  onMessage = { addListener: (fn) => this.msgListeners.push(fn) };
  onDisconnect = { addListener: (fn) => this.discListeners.push(fn) };
  // test side
  reply(id, result) { for (const f of this.msgListeners) f({ jsonrpc: '2.0', id, result }); }
  fail(id, code, message, data) { for (const f of this.msgListeners) f({ jsonrpc: '2.0', id, error: { code, message, data } }); }
  push(msg) { for (const f of this.msgListeners) f(msg); }
  die(reason) { this.closed = true; for (const f of this.discListeners) f(reason); }
  last() { return this.sent.at(-1); }
}

class FakeTimers {
  now = 0;
  timers = new Map();
  next = 1;
  setTimeout = (fn, ms) => { const id = this.next++; this.timers.set(id, { fn, at: this.now + ms }); return id; };
  clearTimeout = (id) => { this.timers.delete(id); };
  advance(ms) {
    this.now += ms;
    for (const [id, t] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.now && this.timers.has(id)) { this.timers.delete(id); t.fn(); }
    }
  }
  delays() { return [...this.timers.values()].map((t) => t.at - this.now); }
}

const tick = () => new Promise((r) => setImmediate(r));

function setup(opts = {}) {
  const ports = [];
  const timers = new FakeTimers();
  const events = [];
  const statuses = [];
  const client = new RpcClient({
    connect: opts.connect ?? (() => { const p = new FakePort(); ports.push(p); return p; }),
    handshake: opts.handshake ?? [{ method: 'host.hello' }],
    onNotification: (m, p) => events.push([m, p]),
    onStatus: (s) => statuses.push(s.state),
    timers,
    timeoutMs: 1000,
    backoffMs: 100,
    maxBackoffMs: 800,
  });
  return { client, ports, timers, events, statuses };
}

async function handshaken(s) {
  const p = s.client.request('list');
  await tick();
  const port = s.ports.at(-1);
  assert.equal(port.sent[0].method, 'host.hello');
  port.reply(port.sent[0].id, { host: '0.1.0', protocol: 1 });
  await tick();
  return { p, port };
}

test('requests wait for the handshake, then go out as JSON-RPC 2.0 with fresh ids', async () => {
  const s = setup();
  const { p, port } = await handshaken(s);
  const req = port.last();
  assert.deepEqual(Object.keys(req).sort(), ['id', 'jsonrpc', 'method', 'params']);
  assert.equal(req.jsonrpc, '2.0');
  assert.equal(req.method, 'list');
  assert.notEqual(req.id, port.sent[0].id);
  port.reply(req.id, { downloads: [], total: 0 });
  assert.deepEqual(await p, { downloads: [], total: 0 });
  assert.equal(s.client.pendingCount, 0);
  assert.deepEqual(s.statuses, ['connecting', 'connected']);
  assert.equal(s.ports.length, 1, 'one port for everything');
});

test('answers are matched by id, in any order', async () => {
  const s = setup();
  const { p: first, port } = await handshaken(s);
  const second = s.client.request('get', { id: 7 });
  await tick();
  const [a, b] = port.sent.slice(1);
  port.reply(b.id, 'B');
  port.reply(a.id, 'A');
  assert.equal(await first, 'A');
  assert.equal(await second, 'B');
});

test('an error response rejects with RpcError carrying code and data', async () => {
  const s = setup();
  const { p, port } = await handshaken(s);
  port.fail(port.last().id, -32602, 'url must be http or https', { kind: 'invalid_input' });
  await assert.rejects(p, (e) => e instanceof RpcError && e.code === -32602 && e.data.kind === 'invalid_input' && !e.unavailable);
});

test('a disconnect rejects every pending request at once', async () => {
  const s = setup();
  const { p, port } = await handshaken(s);
  const q = s.client.request('status');
  await tick();
  assert.equal(s.client.pendingCount, 2);
  port.die('Native host has exited.');
  await assert.rejects(p, (e) => e.code === HOST_UNAVAILABLE && /exited/.test(e.message) && e.unavailable);
  await assert.rejects(q, (e) => e.code === HOST_UNAVAILABLE);
  assert.equal(s.client.pendingCount, 0);
  assert.equal(s.client.status.state, 'host_unavailable');
});

test('a missing host fails the first request fast (no hang)', async () => {
  const s = setup({ connect: () => { const p = new FakePort(); setImmediate(() => p.die('Specified native messaging host not found.')); return p; } });
  await assert.rejects(s.client.request('add', { url: 'https://x.org/a' }), (e) => e.code === HOST_UNAVAILABLE && /not found/.test(e.message));
});

test('connect() throwing is reported, not thrown past the client', async () => {
  const s = setup({ connect: () => { throw new Error('nativeMessaging permission missing'); } });
  await assert.rejects(s.client.request('list'), (e) => e.code === HOST_UNAVAILABLE && /permission/.test(e.message));
});

test('daemon unavailable during the handshake: the next request tries again on the same port', async () => {
  const s = setup();
  const p = s.client.request('add', { url: 'https://x.org/a' });
  await tick();
  const port = s.ports[0];
  port.fail(port.sent[0].id, DAEMON_UNAVAILABLE, 'no daemon', { kind: 'daemon_unavailable', reason: 'connection refused' });
  await assert.rejects(p, (e) => e.code === DAEMON_UNAVAILABLE && e.unavailable);
  await tick();
  assert.equal(s.client.status.state, 'daemon_unavailable');
  assert.equal(s.client.status.reason, 'connection refused');
  const again = s.client.request('list');
  await tick();
  assert.equal(s.ports.length, 1, 'the host is alive: no second port');
  assert.equal(port.last().method, 'host.hello');
  port.reply(port.last().id, {});
  await tick();
  port.reply(port.last().id, { downloads: [] });
  assert.deepEqual(await again, { downloads: [] });
});

test('timeouts reject and late answers are ignored', async () => {
  const s = setup();
  const { p, port } = await handshaken(s);
  const id = port.last().id;
  s.timers.advance(1000);
  await assert.rejects(p, (e) => e.code === TIMEOUT);
  port.reply(id, 'late'); // must not throw nor resolve anything
  assert.equal(s.client.pendingCount, 0);
});

test('notifications go to the listener; junk is ignored', async () => {
  const s = setup();
  await handshaken(s);
  const port = s.ports[0];
  port.push({ jsonrpc: '2.0', method: 'download.progress', params: { downloads: [{ id: 1, done: 5 }] } });
  port.push(null);
  port.push('text');
  port.push({ jsonrpc: '2.0', id: 12345, result: 'nobody asked' });
  assert.deepEqual(s.events, [['download.progress', { downloads: [{ id: 1, done: 5 }] }]]);
});

test('start() reconnects with exponential backoff, capped, and resets after success', async () => {
  const s = setup();
  s.client.start();
  await tick();
  s.ports[0].die('gone');
  await tick();
  assert.deepEqual(s.timers.delays().filter((d) => d < 1000), [100]);
  s.timers.advance(100);
  await tick();
  assert.equal(s.ports.length, 2);
  for (let i = 0; i < 5; i++) {
    s.ports.at(-1).die('gone');
    await tick();
    const delays = s.timers.delays().filter((d) => d <= 800);
    assert.equal(delays.length, 1);
    s.timers.advance(delays[0]);
    await tick();
  }
  // 100, 200, 400, 800, 800, 800: capped
  assert.equal(s.ports.length, 7);
  const port = s.ports.at(-1);
  port.reply(port.sent[0].id, {});
  await tick();
  assert.equal(s.client.status.state, 'connected');
  port.die('again');
  await tick();
  assert.deepEqual(s.timers.delays().filter((d) => d < 1000), [100], 'backoff starts over after a success');
});

test('a request during backoff connects at once instead of waiting', async () => {
  const s = setup();
  s.client.start();
  await tick();
  s.ports[0].die('gone');
  await tick();
  const p = s.client.request('status');
  await tick();
  assert.equal(s.ports.length, 2);
  const port = s.ports[1];
  port.reply(port.sent[0].id, {});
  await tick();
  port.reply(port.last().id, { active: 0 });
  assert.deepEqual(await p, { active: 0 });
});

test('stop() closes the port and stops reconnecting', async () => {
  const s = setup();
  s.client.start();
  await tick();
  s.client.stop();
  assert.ok(s.ports[0].closed);
  s.timers.advance(10_000);
  await tick();
  assert.equal(s.ports.length, 1);
});

test('handshake runs every step in order on each new port', async () => {
  const s = setup({ handshake: [{ method: 'host.hello' }, { method: 'subscribe', params: {} }] });
  const p = s.client.request('list');
  await tick();
  const port = s.ports[0];
  port.reply(port.sent[0].id, { host: 'x' });
  await tick();
  assert.equal(port.sent[1].method, 'subscribe');
  port.reply(port.sent[1].id, { subscribed: [] });
  await tick();
  assert.equal(port.sent[2].method, 'list');
  port.reply(port.sent[2].id, 1);
  assert.equal(await p, 1);
  assert.equal(s.client.status.hello.host, 'x');
});

test('bad arguments are refused before anything is sent', async () => {
  const s = setup();
  await assert.rejects(s.client.request(''), /method/);
  await assert.rejects(s.client.request('add', [1]), /params must be an object/);
  await assert.rejects(s.client.request('add', null), /params must be an object/);
  assert.equal(s.ports.length, 0);
  assert.throws(() => new RpcClient({}), /connect/);
});

test('the host\'s reason and fix for a daemon that cannot start reach the status', async () => {
  const s = setup();
  const p = s.client.request('list');
  await tick();
  const port = s.ports[0];
  port.fail(port.sent[0].id, DAEMON_UNAVAILABLE, 'no daemon', {
    kind: 'daemon_unavailable', reason: 'port 6817 on 127.0.0.1 is held by nginx (pid 12)',
    fix: 'freight start --port 6818', cause: 'port_taken', port: 6817,
  });
  await assert.rejects(p);
  await tick();
  assert.deepEqual(s.client.status, {
    state: 'daemon_unavailable', reason: 'port 6817 on 127.0.0.1 is held by nginx (pid 12)',
    fix: 'freight start --port 6818', cause: 'port_taken', port: 6817,
  });
});

test('a daemon lost after the handshake: the status says so and the next request shakes hands again', async () => {
  const s = setup();
  const { p, port } = await handshaken(s);
  port.reply(port.last().id, { downloads: [] });
  await p;
  assert.equal(s.client.status.state, 'connected');
  // The host's port stays open; the daemon behind it is gone and cannot be started.
  const q = s.client.request('status');
  await tick();
  port.fail(port.last().id, DAEMON_UNAVAILABLE, 'gone', { reason: 'port 6817 is held by x', fix: 'freight start --port 6820' });
  await assert.rejects(q, (e) => e.code === DAEMON_UNAVAILABLE);
  assert.equal(s.client.status.state, 'daemon_unavailable');
  assert.equal(s.client.status.fix, 'freight start --port 6820');
  const r = s.client.request('status');
  await tick();
  assert.equal(port.last().method, 'host.hello', 'the handshake runs again: it may start the daemon');
  port.reply(port.last().id, {});
  await tick();
  assert.equal(s.client.status.state, 'connected');
  port.reply(port.last().id, { active: 0 });
  assert.deepEqual(await r, { active: 0 });
});

test('host.daemon notifications move the status both ways', async () => {
  const s = setup();
  const { p, port } = await handshaken(s);
  port.reply(port.last().id, {});
  await p;
  port.push({ jsonrpc: '2.0', method: 'host.daemon', params: { connected: false } });
  assert.equal(s.client.status.state, 'daemon_unavailable');
  assert.equal(s.client.status.fix, 'freight start');
  port.push({ jsonrpc: '2.0', method: 'host.daemon', params: { connected: true, url: 'ws://127.0.0.1:1/' } });
  assert.equal(s.client.status.state, 'connected');
  assert.deepEqual(s.events.map((e) => e[0]), ['host.daemon', 'host.daemon']);
});

test('recheck() runs host.hello again when the daemon is down, and not while connected', async () => {
  const s = setup();
  const p = s.client.request('list');
  await tick();
  const port = s.ports[0];
  port.fail(port.sent[0].id, DAEMON_UNAVAILABLE, 'no daemon', { reason: 'down' });
  await assert.rejects(p);
  await tick();
  const sent = port.sent.length;
  const again = s.client.recheck();
  await tick();
  assert.equal(port.sent.length, sent + 1);
  assert.equal(port.last().method, 'host.hello');
  port.reply(port.last().id, {});
  await again;
  assert.equal(s.client.status.state, 'connected');
  await s.client.recheck();
  assert.equal(port.sent.length, sent + 1, 'connected: nothing sent');
});
