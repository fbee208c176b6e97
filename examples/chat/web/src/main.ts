// The page of the protows chat demo. It talks to the demo server through
// the generated ChatServiceClient on @protows/client:
//
//   - POST /token turns a nickname into a short-lived JWT; the client asks
//     for a fresh one on every connection and before the current one
//     expires, and presents it in band (browsers cannot set headers on a
//     WebSocket handshake);
//   - Watch is the room membership: its stream brings messages and
//     presence events; GetPresence lists who is there, ListRooms the rooms;
//   - the room keeps its latest messages (docs/PROTOCOL.md section 14):
//     the stream starts with the last 50, and after a network drop or a
//     server restart the client resumes it where it was, so the page says
//     "recovered N messages" (or, when the server could not, "some
//     messages were lost") instead of leaving a hole;
//   - the codec select moves the page to a connection with the other
//     subprotocol without leaving the room: the new connection joins
//     first, the old one closes after, and presence being per person
//     (presence.go) nobody else sees a thing;
//   - Typing is one bidirectional stream per room: the page sends whether
//     its user is typing, and shows who else is ("alice is typing…");
//   - the frame inspector (frames.ts) lists every frame with its size in
//     both codecs, so the two compare without devtools.
//
// Everything the server sends is shown with textContent, never as HTML.
import { toBinary } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Client, ProtowsError, type BidiStream, type RecoveredCall, type StateChange, type StreamMessageInfo, type StreamRecovery } from "@protows/client";
import { indexedDBStorage } from "@protows/client/indexeddb";
import {
  ChatService,
  RoomEventSchema,
  SendRequestSchema,
  type Member,
  type RoomEvent,
  type TypingEventSchema,
  type TypingRequestSchema,
} from "../../../../gen/ts/examples/chat/v1/chat_pb.js";
import { ChatServiceClient } from "../../../../gen/ts/examples/chat/v1/chat_protows.js";
import { FrameInspector, type CodecName as Codec, type FrameRecord } from "./frames.js";

/** The answer of POST /token. */
interface TokenResponse {
  token: string;
  expiresAt: number;
  node: string;
}

const defaultRoom = "lobby";
/** The room's latest messages shown on entry. */
const historyMessages = 50;
const pollMs = 5_000;
const callTimeoutMs = 5_000;
/** While typing, the page says so again this often; others forget a typist after typingForgetMs. */
const typingRepeatMs = 2_000;
const typingForgetMs = 6_000;
/**
 * How long a message may wait in the outbox (typed while offline, or
 * whose answer a dropped connection took) before the page gives up on it.
 */
const sendTimeoutMs = 10 * 60_000;
/** The frame inspector keeps this many rows. */
const maxFrameRows = 200;
/** Events shown lately are remembered, so that a codec switch shows none twice. */
const recentEvents = 64;

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`#${id} is missing`);
  return e as T;
}

const ui = {
  login: el("login"),
  loginForm: el<HTMLFormElement>("login-form"),
  name: el<HTMLInputElement>("name"),
  loginError: el("login-error"),
  whoami: el("whoami"),
  me: el("me"),
  node: el("node"),
  chat: el("chat"),
  rooms: el<HTMLUListElement>("rooms"),
  joinForm: el<HTMLFormElement>("join-form"),
  roomInput: el<HTMLInputElement>("room-input"),
  roomTitle: el("room-title"),
  messages: el<HTMLOListElement>("messages"),
  typing: el("typing"),
  sendForm: el<HTMLFormElement>("send-form"),
  text: el<HTMLInputElement>("text"),
  send: el<HTMLButtonElement>("send"),
  error: el("error"),
  members: el<HTMLUListElement>("members"),
  memberCount: el("member-count"),
  status: el("status"),
  codec: el<HTMLSelectElement>("codec"),
  subprotocol: el("subprotocol"),
  state: el("state"),
  reconnects: el("reconnects"),
  unsent: el("unsent"),
  tokens: el("tokens"),
  tokenExp: el("token-exp"),
  frameRows: el<HTMLTableSectionElement>("frame-rows"),
  frameTotals: el("frame-totals"),
};

/** What the page knows; one session per nickname. */
const app = {
  name: "",
  codec: (new URLSearchParams(location.search).get("codec") === "json" ? "json" : "proto") as Codec,
  room: defaultRoom,
  client: undefined as Client | undefined,
  /** Counts clients, so that a replaced one's state changes are ignored. */
  gen: 0,
  /** Between a drop and the next connection. */
  reconnecting: false,
  chat: undefined as ChatServiceClient | undefined,
  /** The token fetched by the login form, used by the first connection. */
  firstToken: undefined as string | undefined,
  tokensFetched: 0,
  reconnects: 0,
  /** Ends the current Watch stream. */
  watch: undefined as AbortController | undefined,
  /** A codec switch under way: the new client, until its stream adopts it. */
  switching: undefined as { client: Client; watch: AbortController } | undefined,
  /** The members of the current room, by connection id ("node/conn"); a person may have several. */
  members: new Map<string, Member>(),
  /**
   * Set when the member list must be fetched again: at the start of a
   * stream and after a reconnect (the stream is re-opened, and events
   * of the gap are lost).
   */
  needResync: true,
  /** Presence events seen while a GetPresence is in flight, applied in order over its answer. */
  pending: undefined as RoomEvent[] | undefined,
  /** Keys (eventKey) of the events shown lately, oldest first. */
  shown: [] as string[],
  /** The Typing call of the current room and client. */
  typing: undefined as { ctl: AbortController; stream: BidiStream<typeof TypingRequestSchema, typeof TypingEventSchema> } | undefined,
  /** Who else is typing, with when they were last heard of. */
  typists: new Map<string, number>(),
  /** What this page last told the server, and when. */
  typingSent: { typing: false, at: 0 },
};

const inspector = new FrameInspector([ChatService], showFrame);
const frameTotals = { proto: 0, json: 0 };

async function fetchToken(name: string): Promise<TokenResponse> {
  const res = await fetch("/token", { method: "POST", body: new URLSearchParams({ name }) });
  if (!res.ok) throw new Error((await res.text()).trim() || `HTTP ${res.status}`);
  const t = (await res.json()) as TokenResponse;
  app.tokensFetched++;
  ui.tokens.textContent = String(app.tokensFetched);
  ui.tokenExp.textContent = new Date(t.expiresAt * 1000).toLocaleTimeString();
  ui.node.textContent = t.node;
  return t;
}

/** The client's token provider: asked on each connection and before expiry. */
async function nextToken(): Promise<string> {
  const first = app.firstToken;
  app.firstToken = undefined;
  return first ?? (await fetchToken(app.name)).token;
}

function wsURL(): string {
  const u = new URL("/ws", location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

function onState(client: Client | undefined, change: StateChange): void {
  ui.state.textContent = change.state;
  ui.state.dataset.state = change.state;
  if (change.state === "reconnecting" && !app.reconnecting) {
    // One drop, however many attempts it takes.
    app.reconnecting = true;
    app.reconnects++;
    ui.reconnects.textContent = String(app.reconnects);
    app.needResync = true;
    // Send stays enabled: a message typed now waits in the outbox and is
    // delivered once the connection is back.
  }
  if (change.state === "connected") {
    ui.subprotocol.textContent = client?.subprotocol ?? "-";
    // The client re-opens the stream from where it was; the stream says
    // what became of the messages sent meanwhile (runWatch).
    app.reconnecting = false;
  }
  if (change.state === "closed" && change.error !== undefined) {
    showError(change.error);
  }
}

/**
 * newClient makes a client whose state changes show while it is the
 * newest (a replaced one may still report its closing) and whose frames
 * the inspector measures.
 */
function newClient(codec: Codec): Client {
  const gen = ++app.gen;
  // let, not const: the constructor may report "connecting" before the
  // assignment.
  let client: Client | undefined;
  client = new Client({
    url: wsURL(),
    codec,
    token: nextToken,
    // Messages are sent exactly once (Send uses exactlyOnce) and kept in
    // IndexedDB until answered, so that a reload sends again those that
    // had no answer. One database per name and codec: a page's calls are
    // re-sent only under the same principal and in the codec that encoded
    // them.
    outboxStorage: indexedDBStorage({ database: `protows-chat-${app.name}-${codec}` }),
    onRecoveredCall: onRecoveredSend,
    WebSocket: inspector.webSocket(codec),
    onStateChange: (change) => {
      if (gen === app.gen) onState(client, change);
    },
  });
  ui.subprotocol.textContent = "-";
  return client;
}

/** connect opens the first client and watches the room. */
function connect(): void {
  app.client = newClient(app.codec);
  app.chat = new ChatServiceClient(app.client);
  void watchRoom(app.room);
}

/**
 * switchCodec moves the page to a new connection in codec without leaving
 * the room: the new client watches the room, and the first event of its
 * stream (the server's word that it is in) retires the old client. The
 * server announces a person's first membership and last leave only, so
 * the other members see nothing; this page keeps its conversation.
 */
function switchCodec(codec: Codec): void {
  if (app.switching !== undefined) {
    // Switched back before the last switch finished: that one gives way.
    app.switching.watch.abort();
    app.switching.client.close();
    app.switching = undefined;
  }
  app.codec = codec;
  const client = newClient(codec);
  const watch = new AbortController();
  const sw = { client, watch };
  app.switching = sw;
  const chat = new ChatServiceClient(client);
  void runWatch(chat, app.room, watch, () => {
    if (app.switching !== sw) return false;
    app.switching = undefined;
    const old = { client: app.client, watch: app.watch };
    app.client = client;
    app.chat = chat;
    app.watch = watch;
    old.watch?.abort();
    old.client?.close();
    // The member list comes again through the new connection, and so
    // does the typing indicator.
    app.needResync = true;
    startTyping();
    return true;
  });
}

/** watchRoom watches room on the current client, instead of the room before. */
async function watchRoom(room: string): Promise<void> {
  const chat = app.chat;
  if (chat === undefined) return;
  app.watch?.abort();
  const ctl = new AbortController();
  app.watch = ctl;
  app.room = room;
  app.members.clear();
  app.needResync = true;
  app.pending = undefined;
  ui.send.disabled = true;
  ui.roomTitle.textContent = room;
  ui.messages.replaceChildren();
  renderMembers();
  startTyping();
  void refreshRooms();
  await runWatch(chat, room, ctl);
}

/**
 * runWatch shows the events of a Watch stream of room until ctl aborts.
 * With adopt, the stream is a codec switch's: its first event calls adopt,
 * which makes it the page's stream (or says no: the switch was given up),
 * and until the streams differ, events the old stream already showed are
 * skipped, as is the server's word that the new connection is in.
 */
async function runWatch(chat: ChatServiceClient, room: string, ctl: AbortController, adopt?: () => boolean): Promise<void> {
  let overlap = adopt !== undefined;
  // The first position is the stream's start (with the room's history);
  // the later ones tell what a re-open recovered.
  let positions = 0;
  // A loss onRecovery told already: the gap that follows is the same one.
  let lossTold = false;
  try {
    const onRecovery = (r: StreamRecovery): void => {
      if (positions++ === 0 || app.watch !== ctl) return;
      if (r.recovery === "recovered") {
        addLine("presence", undefined, "", `recovered ${r.replayed} message${r.replayed === 1 ? "" : "s"}`, false);
      } else if (r.lost) {
        lossTold = true;
        addLine("presence", undefined, "", "some messages were lost", false);
        // The room's latest messages follow: those shown already are
        // skipped, as after a codec switch.
        overlap = true;
      }
    };
    const onMessageInfo = (info: StreamMessageInfo): void => {
      // Messages may be missing before this one: a re-open the server could
      // not recover (a server without history), or a room sequence number
      // that skips (a slow moment on a broker link, say). Say so, unless
      // onRecovery did, and fetch the member list again.
      if (info.gap && app.watch === ctl) {
        app.needResync = true;
        if (!lossTold) addLine("presence", undefined, "", "some messages were lost", false);
        lossTold = false;
      }
    };
    // A codec switch's stream starts without history: the page shows the
    // room already.
    const history = adopt === undefined ? historyMessages : 0;
    for await (const ev of chat.watch({ room }, { signal: ctl.signal, onMessageInfo, onRecovery, history })) {
      if (ctl.signal.aborted) break; // another room, or another client
      if (adopt !== undefined) {
        const ok = adopt();
        adopt = undefined;
        if (!ok) break;
        if (app.room !== room) {
          // The room changed while the switch was under way.
          void watchRoom(app.room);
          break;
        }
      }
      if (overlap && ev.event.case === "joined" && ev.event.value.name === app.name) {
        onEvent(ev, false); // the new connection is in: no news for anyone
      } else if (overlap && app.shown.includes(eventKey(ev))) {
        // The old stream showed it already.
      } else {
        overlap = false;
        onEvent(ev, true);
      }
      // The first event of a stream (our own join, usually) proves the
      // membership: the member list fetched now includes us and
      // everyone before us, and the stream brings whatever follows.
      if (app.needResync) {
        app.needResync = false;
        void resyncMembers(room, ctl.signal);
      }
      ui.send.disabled = false;
    }
    if (!ctl.signal.aborted) showError(`the server ended the stream of ${room}: join it again`);
  } catch (err) {
    if (!ctl.signal.aborted) showError(err);
  }
  if (app.watch === ctl) ui.send.disabled = true;
}

/**
 * startTyping opens the Typing call of the current room on the current
 * client, instead of the one before. A bidirectional call is not resumed
 * after a reconnect (it fails with unavailable): it is opened again, once
 * the client is back, for as long as it is the page's.
 */
function startTyping(): void {
  app.typing?.ctl.abort();
  app.typing = undefined;
  app.typists.clear();
  renderTyping();
  const chat = app.chat;
  if (chat === undefined) return;
  const ctl = new AbortController();
  const room = app.room;
  void (async () => {
    while (!ctl.signal.aborted) {
      const stream = chat.typing({ signal: ctl.signal });
      app.typing = { ctl, stream };
      // The new call starts from what the input holds now: what was typed
      // while there was no call counts.
      const typing = ui.text.value !== "";
      app.typingSent = { typing, at: Date.now() };
      try {
        await stream.send({ room, typing });
        for await (const ev of stream) {
          if (ev.name === app.name) continue;
          if (ev.typing) app.typists.set(ev.name, Date.now());
          else app.typists.delete(ev.name);
          renderTyping();
        }
      } catch {
        // unavailable (a reconnect) or canceled (another room): see below.
      }
      if (ctl.signal.aborted) return;
      app.typists.clear();
      renderTyping();
      await new Promise((r) => setTimeout(r, 1_000)); // the client reconnects meanwhile
    }
  })();
}

/** sendTyping tells the room whether this page's user is typing, repeating "yes" while it holds. */
function sendTyping(typing: boolean): void {
  const t = app.typing;
  if (t === undefined) return;
  const now = Date.now();
  if (typing === app.typingSent.typing && (!typing || now - app.typingSent.at < typingRepeatMs)) return;
  app.typingSent = { typing, at: now };
  t.stream.send({ typing }).catch(() => {
    // The call ended; startTyping's loop opens another.
  });
}

/** renderTyping shows who else is typing, forgetting typists not heard from lately. */
function renderTyping(): void {
  const now = Date.now();
  for (const [name, at] of app.typists) if (now - at > typingForgetMs) app.typists.delete(name);
  const names = [...app.typists.keys()].sort();
  ui.typing.textContent =
    names.length === 0
      ? ""
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
}

/** eventKey identifies an event across streams: a broadcast is the same message on each. */
function eventKey(ev: RoomEvent): string {
  return toBinary(RoomEventSchema, ev).join(",");
}

async function resyncMembers(room: string, signal: AbortSignal): Promise<void> {
  const chat = app.chat;
  if (chat === undefined) return;
  const pending: RoomEvent[] = [];
  app.pending = pending;
  try {
    // A page at a time: a crowded room's list may not fit one reply.
    const next = new Map<string, Member>();
    let pageToken = "";
    do {
      const res = await chat.getPresence({ room, pageSize: 1000, pageToken }, { signal, timeoutMs: callTimeoutMs });
      if (app.pending !== pending || signal.aborted) return;
      for (const m of res.members) next.set(m.connectionId, m);
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
    // Replayed in order: each is right whether the answer saw it or not.
    for (const ev of pending) applyPresence(next, ev);
    app.members = next;
    renderMembers();
  } catch (err) {
    if (!signal.aborted) showError(err);
  } finally {
    if (app.pending === pending) app.pending = undefined;
  }
}

/** onEvent applies an event, and shows it in the room when show is set. */
function onEvent(ev: RoomEvent, show: boolean): void {
  if (show) remember(ev);
  switch (ev.event.case) {
    case "message": {
      const author = ev.event.value.author;
      if (show) addLine("message", ev.time, author?.name ?? "", ev.event.value.text, author?.name === app.name);
      break;
    }
    case "joined":
    case "left": {
      applyPresence(app.members, ev);
      app.pending?.push(ev);
      const m = ev.event.value;
      if (show) addLine("presence", ev.time, "", `${m.name} ${ev.event.case}`, false);
      renderMembers();
      void refreshRooms();
      break;
    }
    default:
      break; // an event of a newer server: nothing to show
  }
}

/**
 * applyPresence applies a joined or left event to a member list. Presence
 * is per person: "left" means the last connection of that name left, so
 * every connection listed under the name goes (those that left before
 * were not announced).
 */
function applyPresence(members: Map<string, Member>, ev: RoomEvent): void {
  if (ev.event.case === "joined") {
    members.set(ev.event.value.connectionId, ev.event.value);
  } else if (ev.event.case === "left") {
    const gone = ev.event.value;
    members.delete(gone.connectionId);
    if (gone.name !== "") {
      for (const [id, m] of members) if (m.name === gone.name) members.delete(id);
    }
  }
}

function remember(ev: RoomEvent): void {
  app.shown.push(eventKey(ev));
  if (app.shown.length > recentEvents) app.shown.shift();
}

function addLine(kind: "message" | "presence", time: Timestamp | undefined, author: string, text: string, mine: boolean): void {
  const li = document.createElement("li");
  li.className = mine ? `${kind} mine` : kind;
  const t = document.createElement("span");
  t.className = "time";
  t.textContent = time === undefined ? "" : timestampDate(time).toLocaleTimeString();
  li.append(t);
  if (author !== "") {
    const a = document.createElement("span");
    a.className = "author";
    a.textContent = author;
    li.append(a);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(body);
  const atBottom = ui.messages.scrollTop + ui.messages.clientHeight >= ui.messages.scrollHeight - 4;
  ui.messages.append(li);
  if (atBottom) ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** renderMembers lists the people of the room, one line per name, with the nodes of their connections. */
function renderMembers(): void {
  const people = new Map<string, Member[]>();
  const sorted = [...app.members.values()].sort(
    (a, b) => Number(a.joinedAt?.seconds ?? 0n) - Number(b.joinedAt?.seconds ?? 0n) || a.name.localeCompare(b.name),
  );
  for (const m of sorted) {
    const conns = people.get(m.name);
    if (conns === undefined) people.set(m.name, [m]);
    else conns.push(m);
  }
  ui.members.replaceChildren(
    ...[...people].map(([person, conns]) => {
      const li = document.createElement("li");
      li.className = person === app.name ? "member me" : "member";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = person;
      name.title = person;
      // "node/conn": the node is what tells members apart in a cluster.
      const conn = document.createElement("span");
      conn.className = "conn";
      conn.textContent = [...new Set(conns.map((m) => m.connectionId.split("/")[0] ?? ""))].join(" ");
      conn.title = conns.map((m) => m.connectionId).join(" ");
      li.append(name, conn);
      return li;
    }),
  );
  ui.memberCount.textContent = `(${people.size})`;
}

/** showFrame adds the inspector's record of a frame to the table and the totals. */
function showFrame(f: FrameRecord): void {
  const tr = document.createElement("tr");
  tr.className = `frame ${f.dir}`;
  tr.dataset.dir = f.dir;
  tr.dataset.wire = f.wire;
  tr.dataset.kinds = f.kinds.join(" ");
  tr.dataset.ids = f.ids.join(" ");
  tr.dataset.methods = f.methods.join(" ");
  const cell = (className: string, text: string, title?: string): HTMLTableCellElement => {
    const td = document.createElement("td");
    td.className = className;
    td.textContent = text;
    if (title !== undefined) td.title = title;
    return td;
  };
  tr.append(
    cell("dir", f.dir === "sent" ? "↑" : "↓", f.dir),
    cell("kinds", summarizeKinds(f.kinds), f.kinds.map((k, i) => `${k} #${f.ids[i]}`).join(", ")),
    cell("method", f.methods.join(", ")),
  );
  for (const c of ["proto", "json"] as const) {
    const n = f.bytes[c];
    const td = cell(c === f.wire ? "size wire" : "size", n === undefined ? "?" : String(n), c === f.wire ? "on the wire" : (f.problem ?? "re-encoded"));
    td.dataset.codec = c;
    if (n !== undefined) td.dataset.bytes = String(n);
    tr.append(td);
  }
  ui.frameRows.prepend(tr);
  while (ui.frameRows.childElementCount > maxFrameRows) ui.frameRows.lastElementChild?.remove();

  const { proto, json } = f.bytes;
  if (proto === undefined || json === undefined) return;
  frameTotals.proto += proto;
  frameTotals.json += json;
  const saved = Math.round((1 - frameTotals.proto / frameTotals.json) * 100);
  ui.frameTotals.textContent =
    `${f.n} frames: ${formatBytes(frameTotals.proto)} in Protobuf, ${formatBytes(frameTotals.json)} in JSON` +
    (saved > 0 ? ` (Protobuf ${saved}% smaller)` : "");
}

/** summarizeKinds shortens a batch: "stream_message ×3, pong". */
function summarizeKinds(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const k of kinds) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts].map(([k, n]) => (n > 1 ? `${k} ×${n}` : k)).join(", ");
}

function formatBytes(n: number): string {
  return n < 10_000 ? `${n} B` : `${(n / 1000).toFixed(1)} kB`;
}

let roomsInFlight = false;
async function refreshRooms(): Promise<void> {
  const chat = app.chat;
  if (chat === undefined || roomsInFlight) return;
  roomsInFlight = true;
  try {
    const res = await chat.listRooms({}, { timeoutMs: callTimeoutMs });
    const names = res.rooms.map((r) => r.name);
    if (!names.includes(app.room)) names.push(app.room);
    names.sort();
    ui.rooms.replaceChildren(
      ...names.map((name) => {
        const li = document.createElement("li");
        li.className = name === app.room ? "room current" : "room";
        li.dataset.room = name;
        const n = document.createElement("span");
        n.textContent = name;
        const count = document.createElement("span");
        count.className = "count";
        count.textContent = String(res.rooms.find((r) => r.name === name)?.members ?? 0);
        li.append(n, count);
        li.addEventListener("click", () => {
          if (name !== app.room) void watchRoom(name);
        });
        return li;
      }),
    );
  } catch {
    // Shown at the next poll; the connection state says what is wrong.
  } finally {
    roomsInFlight = false;
  }
}

/**
 * onRecoveredSend reports the answer of a message that an earlier page (or
 * the client a codec switch retired) sent but had no answer for; the
 * message itself shows through the room's stream.
 */
function onRecoveredSend(call: RecoveredCall): void {
  const text = call.request(SendRequestSchema).text;
  if (call.error !== undefined) {
    showError(`not sent: "${text}": ${call.error.code}: ${call.error.rawMessage}`);
    return;
  }
  addLine("presence", undefined, "", `delivered after a reload: "${text}"`, false);
}

/** showUnsent shows how many messages wait for their answer. */
function showUnsent(): void {
  ui.unsent.textContent = String(app.client?.outboxSize ?? 0);
}

function showError(err: unknown): void {
  ui.error.textContent = err instanceof ProtowsError ? `${err.code}: ${err.message}` : String(err);
}

ui.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void (async () => {
    ui.loginError.textContent = "";
    try {
      // Fetched here so that a refused name shows on the form.
      const t = await fetchToken(ui.name.value);
      app.name = ui.name.value.trim();
      app.firstToken = t.token;
    } catch (err) {
      ui.loginError.textContent = String(err instanceof Error ? err.message : err);
      return;
    }
    ui.me.textContent = app.name;
    ui.login.hidden = true;
    ui.whoami.hidden = false;
    ui.chat.hidden = false;
    ui.status.hidden = false;
    ui.codec.value = app.codec;
    connect();
    setInterval(() => {
      renderTyping();
      if (app.typingSent.typing) sendTyping(ui.text.value !== "");
    }, 1_000);
    setInterval(() => {
      void refreshRooms();
      // Presence of other nodes is eventually consistent: fetching the
      // list now and then repairs what events alone would leave stale.
      const watch = app.watch;
      if (watch !== undefined && !app.needResync && app.pending === undefined) void resyncMembers(app.room, watch.signal);
    }, pollMs);
    ui.text.focus();
  })();
});

ui.sendForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const chat = app.chat;
  const text = ui.text.value;
  if (chat === undefined || text === "") return;
  sendTyping(false);
  const client = app.client;
  // The message waits in the outbox until it is answered: sent now, or
  // once the connection is back, and again with the same idempotency key
  // if the connection drops before the answer, so that the room gets it
  // once, never twice.
  ui.text.value = "";
  void (async () => {
    const sending = chat.send({ room: app.room, text }, { exactlyOnce: true, timeoutMs: sendTimeoutMs });
    showUnsent();
    try {
      await sending;
      ui.error.textContent = "";
    } catch (err) {
      // A client retired by a codec switch fails its calls with canceled;
      // they stay in IndexedDB for a client of that codec.
      if (client !== app.client && err instanceof ProtowsError && err.code === "canceled") return;
      showError(err);
      if (ui.text.value === "") ui.text.value = text;
    } finally {
      showUnsent();
    }
  })();
});

ui.text.addEventListener("input", () => sendTyping(ui.text.value !== ""));
ui.text.addEventListener("blur", () => sendTyping(false));

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const room = ui.roomInput.value.trim();
  if (room === "") return;
  ui.roomInput.value = "";
  void watchRoom(room);
});

ui.codec.addEventListener("change", () => {
  const codec: Codec = ui.codec.value === "json" ? "json" : "proto";
  if (codec === app.codec) return;
  // Kept in the URL (?codec=json), so that a reload keeps the codec.
  history.replaceState(null, "", codec === "json" ? "?codec=json" : location.pathname);
  switchCodec(codec);
});
