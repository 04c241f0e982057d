// Drives the real `hyperstack-typescript` 0.6.9 client against a stackcore WebSocket endpoint.
//
//   node client.mjs ws://127.0.0.1:PORT
//
// Plan (environment, all optional):
//   HS_PATCHES      live patch/upsert frames to see per view after its first frame (default 3)
//   HS_TIMEOUT_MS   give up after this long, exit code 2 (default 20000)
//   HS_QUIET_MS     after the live frames, also wait until no frame came for this long (default 0),
//                   so that the merged entities can be compared with a finished server state
//   HS_RECONNECT    1 (default): after unsubscribing and disconnecting, connect again,
//                   subscribe to OreRound/list again and wait for its `subscribed` frame
//   HS_MODE         `slow`: subscribe to OreRound/list only and wait until the server closes
//                   the socket and the client has reconnected by itself and re-subscribed; print
//                   {"closes":[{code,reason}],"socketIssues":[..],"states":[..]}
//
// Steps: connect with a hand-written ORE stack definition; subscribe to OreRound/list and to
// OreRound/latest with take 1 (through the client's own view API); wait for the first frame of
// each view (the `subscribed` frame; a snapshot follows when there are rows) and HS_PATCHES live
// frames; print one JSON line on stdout:
//   {"views":{"OreRound/list":{key:entity},"OreRound/latest":{key:entity}},
//    "frames":{"OreRound/list":{"subscribed":1,"snapshot":1,"patch":3},...},
//    "socketIssues":[...],"reconnected":true}
// then unsubscribe, disconnect, and (HS_RECONNECT) reconnect once.
//
// Node 20 has no global WebSocket: the `ws` package stands in, with binaryType 'arraybuffer'
// so that the client can parse binary frames.

import WebSocketImpl from 'ws';
import { HyperStack } from 'hyperstack-typescript';

const closes = [];

class ArrayBufferWebSocket extends WebSocketImpl {
  constructor(...args) {
    super(...args);
    this.binaryType = 'arraybuffer';
    this.addEventListener('close', (e) => closes.push({ code: e.code, reason: e.reason }));
  }
}
globalThis.WebSocket = ArrayBufferWebSocket;

const url = process.argv[2];
if (!url) {
  console.error('usage: node client.mjs ws://host:port');
  process.exit(64);
}
const PATCHES = Number(process.env.HS_PATCHES ?? 3);
const TIMEOUT_MS = Number(process.env.HS_TIMEOUT_MS ?? 20000);
const QUIET_MS = Number(process.env.HS_QUIET_MS ?? 0);
const RECONNECT = (process.env.HS_RECONNECT ?? '1') === '1';

const LIST = 'OreRound/list';
const LATEST = 'OreRound/latest';

const stack = {
  name: 'ore-interop',
  url,
  views: {
    OreRound: {
      list: { mode: 'list', view: LIST },
      latest: { mode: 'list', view: LATEST },
      state: { mode: 'state', view: 'OreRound/state' },
    },
  },
};

const timer = setTimeout(() => {
  console.error(`timed out after ${TIMEOUT_MS} ms; frames seen: ${JSON.stringify(frames)}`);
  process.exit(2);
}, TIMEOUT_MS);

const frames = { [LIST]: {}, [LATEST]: {} };
const socketIssues = [];
let waiters = [];
let lastFrameAt = Date.now();

function onFrame(f) {
  const view = f.entity ?? f.view;
  if (!(view in frames)) return;
  frames[view][f.op] = (frames[view][f.op] ?? 0) + 1;
  lastFrameAt = Date.now();
  waiters = waiters.filter((w) => !w());
}

function until(cond) {
  if (cond()) return Promise.resolve();
  return new Promise((resolve) => {
    waiters.push(() => {
      if (cond()) {
        resolve();
        return true;
      }
      return false;
    });
  });
}

const live = (view) => (frames[view].patch ?? 0) + (frames[view].upsert ?? 0);
const started = (view) => (frames[view].subscribed ?? 0) + (frames[view].snapshot ?? 0) > 0;

/** Keeps an entity stream open (which keeps its subscription) until `stop` resolves. */
function hold(stream, stop) {
  const it = stream[Symbol.asyncIterator]();
  let stopped = false;
  stop.then(() => {
    stopped = true;
    return it.return?.();
  });
  (async () => {
    while (!stopped) {
      const r = await it.next();
      if (r.done) break;
    }
  })();
}

/** The server closes us (e.g. 4008 slow-consumer); the client must reconnect and resubscribe. */
async function slowMode() {
  const states = [];
  const hs = await HyperStack.connect(stack, { url });
  hs.onFrame(onFrame);
  hs.onSocketIssue((issue) => socketIssues.push(issue));
  hs.onConnectionStateChange((state) => states.push(state));
  let release;
  hold(hs.views.OreRound.list.use(), new Promise((r) => (release = r)));
  await until(() => started(LIST));
  await until(() => (frames[LIST].subscribed ?? 0) >= 2 && closes.length > 0);
  process.stdout.write(JSON.stringify({ closes, socketIssues, states }) + '\n');
  release();
  hs.disconnect();
  clearTimeout(timer);
  process.exit(0);
}

async function main() {
  if (process.env.HS_MODE === 'slow') return slowMode();
  const hs = await HyperStack.connect(stack, { url });
  hs.onFrame(onFrame);
  hs.onSocketIssue((issue) => socketIssues.push(issue));

  let release;
  const stop = new Promise((r) => (release = r));
  hold(hs.views.OreRound.list.use(), stop);
  hold(hs.views.OreRound.latest.use({ take: 1 }), stop);

  await until(() => started(LIST) && started(LATEST));
  await until(() => live(LIST) >= PATCHES && live(LATEST) >= PATCHES);
  while (QUIET_MS > 0 && Date.now() - lastFrameAt < QUIET_MS) {
    await new Promise((r) => setTimeout(r, 50));
  }

  const merged = {};
  for (const view of [LIST, LATEST]) {
    merged[view] = {};
    for (const key of hs.store.keys(view)) merged[view][key] = hs.store.getSync(view, key);
  }

  release();
  await new Promise((r) => setTimeout(r, 50)); // let the unsubscribes go out
  hs.disconnect();

  let reconnected = false;
  if (RECONNECT) {
    frames[LIST] = {};
    const again = await HyperStack.connect(stack, { url });
    again.onFrame(onFrame);
    let release2;
    const stop2 = new Promise((r) => (release2 = r));
    hold(again.views.OreRound.list.use(), stop2);
    await until(() => started(LIST));
    reconnected = true;
    release2();
    await new Promise((r) => setTimeout(r, 50));
    again.disconnect();
  }

  process.stdout.write(
    JSON.stringify({ views: merged, frames, socketIssues, reconnected }) + '\n',
  );
  clearTimeout(timer);
  process.exit(0);
}

main().catch((e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
