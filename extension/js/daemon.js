// The one JSON-RPC client to the daemon, through freight-host over a persistent
// connectNative port (rpc.js). Every module that asks the daemon something uses this one;
// background.js gives it the handlers for the daemon's events and the link's status.

import * as ext from './ext.js';
import { RpcClient } from './rpc.js';

const HOST = 'dev.freight.host';

const handlers = { event: () => {}, status: () => {} };

export const rpc = new RpcClient({
  connect: () => ext.connectNative(HOST),
  handshake: [{ method: 'host.hello' }, { method: 'subscribe' }],
  onNotification: (method, params) => handlers.event(method, params),
  onStatus: (status) => handlers.status(status),
  timeoutMs: 20_000,
});

/** Where the daemon's events and the link's status changes go (set once, before start()). */
export function onDaemon({ event, status }) {
  handlers.event = event;
  handlers.status = status;
}
