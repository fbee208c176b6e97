// Command chat is the protows chat demo: a web page where people pick a
// nickname, join rooms, chat, see who is present, and switch the wire
// codec between Protobuf and JSON. Its frame inspector lists every
// WebSocket message of the page with its size in the codec on the wire and
// in the other one (re-encoded in the page), so the codecs compare without
// devtools. The page lays out for a phone (one column) as for a desktop.
//
//	go run ./examples/chat                      # http://127.0.0.1:8080 (make demo)
//	go run ./examples/chat -cluster 3           # 3 nodes on NATS, :8080-:8082 (make demo-cluster)
//	go run ./examples/chat -addr 127.0.0.1:8090 -nats nats://127.0.0.1:4222
//	go run ./examples/chat -reflection          # for the protows command: protows list ws://127.0.0.1:8080/ws
//
// With -reflection the demo serves protows server reflection (off by
// default), so that the protows command (cmd/protows) lists, describes and
// calls the chat service with a token from POST /token (--token).
//
// The page (web/, TypeScript on the generated ChatServiceClient and
// @protows/client) is served at /, the protows endpoint at /ws,
// POST /token mints tokens, and GET /metrics serves the node's transport
// metrics (transport/prommetrics: connections, frames and bytes by
// subprotocol, handler durations) and Go's, for Prometheus. The built page is embedded; rebuild it with
// npm run build -w examples/chat/web after changing web/src, the
// generated TypeScript or the runtime.
//
// # Security
//
// The demo runs with the protections on, not off:
//
//   - Tokens. POST /token with a form field "name" (1 to 32 printable
//     characters) answers {"token", "expiresAt", "node"}: an HS256 JWT
//     whose subject is the nickname, issuer "protows-chat-demo",
//     audience "protows-chat", living -token-ttl (2 minutes; at least 2 s),
//     signed with a key made at start, so a restart invalidates every
//     token. Anyone may take any nickname: it is a demo, not a login.
//   - Authentication. The WebSocket endpoint requires a token, which the
//     page presents in band (browsers cannot set headers on a WebSocket
//     handshake) and refreshes before it expires; the transport closes a
//     connection whose token expired with 4009.
//   - Origins. Handshakes and token requests whose Origin is not one of
//     the demo's own (the listen address and localhost on its port, or
//     -origin) get 403: an explicit list, not the request's own Host,
//     which a DNS-rebinding page would satisfy.
//   - The page is served with a Content-Security-Policy that allows only
//     its own scripts, styles and connections, and no framing; it shows
//     everything it receives as text, never as HTML.
//
// # Rooms
//
// Watch is a room membership (hub.Attach) whose stream brings the room's
// messages and join and leave events; Send broadcasts to a room the caller
// watches (failed_precondition otherwise, after waiting up to 2 s for the
// caller's Watch to join); GetPresence and ListRooms read the hub a page
// at a time (page_size 100 by default, at most 1000, and next_page_token),
// because a node's whole list may not fit one reply. Rooms are 1 to 64
// characters, messages 1 to 4096 bytes.
//
// Messages are sent exactly once (docs/PROTOCOL.md, section 3.7): the page
// sends each with an idempotency key through its client's outbox, kept in
// IndexedDB, and the server's default in-memory window answers a repeated
// send with the first outcome. A message typed while the network is down
// is delivered when it returns; one whose answer a dropped connection
// took, or whose page reloaded before the answer, is sent again with the
// same key and broadcast once. Each node keeps its own window, which is
// enough here: a page reconnects to the node that served it (a cluster
// behind one address would share the window, dedupe/natsdedupe).
//
// Presence is per person (a token's subject), not per connection: the
// room hears of a person's first membership and of the end of their last
// one. A further membership (a second tab) is told of its own join only,
// so that its client knows it is in. The page switches codec on that: it
// opens a connection in the new codec, watches the room, and closes the
// old connection once the new stream brought its first event, so the
// other members see nothing of it. ListRooms counts people; GetPresence
// lists every membership, and the page shows one line per name.
//
// # Typing
//
// Typing is a bidirectional call per page and room: the page sends
// whether its user is typing (again every 2 s while it holds), and the
// call streams the room's typing events, which the page shows as "alice
// is typing…" and forgets after 6 s without news. Its memberships live in
// a hub of their own (NATS subject protows.chat.typing), so that typing
// takes no room sequence numbers; the hub's presence turns a join and a
// leave into "not typing", so a closed page stops typing for everyone.
// Bidirectional calls are not resumed after a reconnect: the page opens
// the call again.
//
// # Cluster
//
// With -cluster N the command starts an embedded NATS server on loopback
// and N nodes on consecutive ports from -addr's (any free ports with port
// 0), in one process; each node has its own hub, NATS connection,
// transport server and token key, so a page talks to the node that served
// it and rooms span the nodes. The command prints the NATS URL: a node
// started elsewhere on this machine with -nats URL joins the cluster.
//
// # Shutdown
//
// SIGINT or SIGTERM shuts down gracefully: room streams end with
// unavailable (clients subscribe again elsewhere or later), running calls
// finish, connections close with 1001, and the nodes leave the cluster.
package main
