// The page of the protows chat demo. It talks to the demo server through
// the generated ChatServiceClient on @protows/client:
//
//   - POST /token turns a nickname into a short-lived JWT; the client asks
//     for a fresh one on every connection and before the current one
//     expires, and presents it in band (browsers cannot set headers on a
//     WebSocket handshake);
//   - Watch is the room membership: its stream brings messages and
//     presence events; GetPresence lists who is there, ListRooms the rooms;
//   - the codec select reconnects with the other subprotocol, so the frames
//     can be read in devtools (Network, WS, Messages) in JSON.
//
// Everything the server sends is shown with textContent, never as HTML.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Client, ProtowsError, type StateChange, type StreamMessageInfo } from "@protows/client";
import type { Member, RoomEvent } from "../../../../gen/ts/examples/chat/v1/chat_pb.js";
import { ChatServiceClient } from "../../../../gen/ts/examples/chat/v1/chat_protows.js";

type Codec = "proto" | "json";

/** The answer of POST /token. */
interface TokenResponse {
  token: string;
  expiresAt: number;
  node: string;
}

const defaultRoom = "lobby";
const pollMs = 5_000;
const callTimeoutMs = 5_000;

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
  tokens: el("tokens"),
  tokenExp: el("token-exp"),
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
  /** The members of the current room, by connection id ("node/conn"). */
  members: new Map<string, Member>(),
  /**
   * Set when the member list must be fetched again: at the start of a
   * stream and after a reconnect (the stream is re-opened, and events
   * of the gap are lost).
   */
  needResync: true,
  /** Changes seen while a GetPresence is in flight, applied over its answer. */
  pending: undefined as { joined: Map<string, Member>; left: Set<string> } | undefined,
};

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

function onState(change: StateChange): void {
  ui.state.textContent = change.state;
  ui.state.dataset.state = change.state;
  if (change.state === "reconnecting" && !app.reconnecting) {
    // One drop, however many attempts it takes.
    app.reconnecting = true;
    app.reconnects++;
    ui.reconnects.textContent = String(app.reconnects);
    app.needResync = true;
    ui.send.disabled = true;
  }
  if (change.state === "connected") {
    ui.subprotocol.textContent = app.client?.subprotocol ?? "-";
    if (app.reconnecting) {
      // The stream is re-opened by the client; what the room said in
      // between is lost.
      addLine("presence", undefined, "", "reconnected: messages sent while away are missing", false);
      app.reconnecting = false;
    }
  }
  if (change.state === "closed" && change.error !== undefined) {
    showError(change.error);
  }
}

/** connect opens a client with the current codec and watches the room. */
function connect(): void {
  // A replaced client may still report its closing: only the current
  // one's changes count.
  const gen = ++app.gen;
  app.client = new Client({
    url: wsURL(),
    codec: app.codec,
    token: nextToken,
    onStateChange: (change) => {
      if (gen === app.gen) onState(change);
    },
  });
  app.chat = new ChatServiceClient(app.client);
  ui.subprotocol.textContent = "-";
  void watchRoom(app.room);
}

function disconnect(): void {
  app.gen++;
  app.reconnecting = false;
  app.watch?.abort();
  app.watch = undefined;
  app.client?.close();
  app.client = undefined;
  app.chat = undefined;
}

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
  void refreshRooms();
  try {
    const onMessageInfo = (info: StreamMessageInfo): void => {
      // A room sequence number that skips means events were lost without a
      // reconnect (a slow moment on a broker link, say): say so, and fetch
      // the member list again. A reconnect is reported by onState already.
      if (info.gap && !app.needResync) {
        app.needResync = true;
        addLine("presence", undefined, "", "missed some messages: resynchronizing", false);
      }
    };
    for await (const ev of chat.watch({ room }, { signal: ctl.signal, onMessageInfo })) {
      if (ctl.signal.aborted) break; // another room, or another client
      onEvent(ev);
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

async function resyncMembers(room: string, signal: AbortSignal): Promise<void> {
  const chat = app.chat;
  if (chat === undefined) return;
  const pending = { joined: new Map<string, Member>(), left: new Set<string>() };
  app.pending = pending;
  try {
    const res = await chat.getPresence({ room }, { signal, timeoutMs: callTimeoutMs });
    if (app.pending !== pending || signal.aborted) return;
    const next = new Map(res.members.map((m) => [m.connectionId, m]));
    for (const [id, m] of pending.joined) next.set(id, m);
    for (const id of pending.left) next.delete(id);
    app.members = next;
    renderMembers();
  } catch (err) {
    if (!signal.aborted) showError(err);
  } finally {
    if (app.pending === pending) app.pending = undefined;
  }
}

function onEvent(ev: RoomEvent): void {
  switch (ev.event.case) {
    case "message": {
      const author = ev.event.value.author;
      addLine("message", ev.time, author?.name ?? "", ev.event.value.text, author?.name === app.name);
      break;
    }
    case "joined": {
      const m = ev.event.value;
      app.members.set(m.connectionId, m);
      app.pending?.joined.set(m.connectionId, m);
      app.pending?.left.delete(m.connectionId);
      addLine("presence", ev.time, "", `${m.name} joined`, false);
      renderMembers();
      void refreshRooms();
      break;
    }
    case "left": {
      const m = ev.event.value;
      app.members.delete(m.connectionId);
      app.pending?.joined.delete(m.connectionId);
      app.pending?.left.add(m.connectionId);
      addLine("presence", ev.time, "", `${m.name} left`, false);
      renderMembers();
      void refreshRooms();
      break;
    }
    default:
      break; // an event of a newer server: nothing to show
  }
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

function renderMembers(): void {
  const sorted = [...app.members.values()].sort(
    (a, b) => Number(a.joinedAt?.seconds ?? 0n) - Number(b.joinedAt?.seconds ?? 0n) || a.name.localeCompare(b.name),
  );
  ui.members.replaceChildren(
    ...sorted.map((m) => {
      const li = document.createElement("li");
      li.className = m.name === app.name ? "member me" : "member";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = m.name;
      name.title = m.name;
      // "node/conn": the node is what tells members apart in a cluster.
      const conn = document.createElement("span");
      conn.className = "conn";
      conn.textContent = m.connectionId.split("/")[0] ?? "";
      conn.title = m.connectionId;
      li.append(name, conn);
      return li;
    }),
  );
  ui.memberCount.textContent = `(${sorted.length})`;
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
  void (async () => {
    try {
      await chat.send({ room: app.room, text }, { timeoutMs: callTimeoutMs });
      if (ui.text.value === text) ui.text.value = "";
      ui.error.textContent = "";
    } catch (err) {
      showError(err);
    }
  })();
});

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const room = ui.roomInput.value.trim();
  if (room === "") return;
  ui.roomInput.value = "";
  void watchRoom(room);
});

ui.codec.addEventListener("change", () => {
  app.codec = ui.codec.value === "json" ? "json" : "proto";
  // Kept in the URL (?codec=json), so that a reload keeps the codec.
  history.replaceState(null, "", app.codec === "json" ? "?codec=json" : location.pathname);
  disconnect();
  connect();
});
