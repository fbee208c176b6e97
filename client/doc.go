// Package client is the Go client of protows: typed calls and streams of
// every kind over one WebSocket connection that repairs itself.
//
// # Usage
//
//	c, err := client.Dial(ctx, "wss://chat.example.com/ws", client.WithCodec(codec.JSON()))
//	if err != nil {
//		return err // a *protows.Error: unreachable, 401, 403, ...
//	}
//	defer c.Close()
//
//	res, err := client.CallUnary[chatv1.SendResponse](ctx, c, "/chat.v1.ChatService/Send", req)
//
//	stream, err := client.CallServerStream[chatv1.RoomEvent](ctx, c, "/chat.v1.ChatService/Watch", req)
//	for stream.Receive() {
//		handle(stream.Msg())
//	}
//	err = stream.Err() // nil when the server ended the stream cleanly
//
//	up, err := client.CallClientStream[chatv1.Line, chatv1.Summary](ctx, c, "/chat.v1.ChatService/Upload")
//	err = up.Send(line)          // io.EOF once the server ended the call
//	sum, err := up.CloseAndReceive()
//
//	talk, err := client.CallBidiStream[chatv1.Line, chatv1.Line](ctx, c, "/chat.v1.ChatService/Talk")
//	err = talk.Send(line)        // and, from another goroutine:
//	msg, err := talk.Receive()   // io.EOF when the server ended the call cleanly
//	err = talk.CloseSend()
//
// # Flow control
//
// Every stream the client reads has a window (WithStreamBuffer, 256
// messages by default): the client grants it to the server in the REQUEST
// and grants more as the reader takes messages (docs/PROTOCOL.md, section
// 4.6), so the server waits for a slow reader and the client never holds
// more than the window. Send on a ClientStream or BidiStream waits for the
// server's credit likewise. Client streams and bidirectional calls are
// never resumed on the next connection: they end with CodeUnavailable
// wrapping ErrConnectionLost.
//
// Generated clients (NewChatServiceClient(c)) wrap these calls with the
// method names and types filled in.
//
// # Errors
//
// Every error a call returns is a *protows.Error; protows.CodeOf(err) gives
// its code, and its Method the method of the call, which its text names too
// (a mistyped method reads "protows: unimplemented:
// /chat.v1.ChatService/Sned: unknown method with id 0xd2600009", where the
// server, which got only the id from the Protobuf codec, could not name
// it). The server's errors arrive as they were sent (Message is the
// server's). The client adds:
// CodeDeadlineExceeded and CodeCanceled when the call's context ended (the
// server got a CANCEL); CodeUnavailable wrapping ErrConnectionLost when the
// connection dropped with the call in flight; CodeCanceled wrapping
// ErrClosed after Close; CodeResourceExhausted for a request larger than
// WithMaxMessageSize and for a stream whose reader fell behind; and, after
// the server told the client to stop, the code of the close-code table.
//
// A refused handshake names the HTTP status and, when the body is a short
// plain-text reason (as a protows server sends), the reason; a foreign
// endpoint's page (an HTML 200, a proxy's 502 page) is never copied into
// the error.
//
// # Interceptors
//
// WithInterceptors wraps every call in Interceptors, the first outermost:
// WrapUnary sees a unary call and its response, WrapStream sees the opening
// of a stream and returns a Stream, which may be wrapped to see its
// messages and its end. Interceptors set request metadata with
// Call.SetMetadata (a request id, a trace context), and see each call once:
// retries and re-opens after a reconnection happen beneath them. LogCalls
// logs every call; package otelprotows traces them.
//
//	c, err := client.Dial(ctx, url, client.WithInterceptors(client.LogCalls(logger)))
//
// # Reconnection
//
// After the first connection, the client reconnects on its own, with
// exponential backoff and full jitter (Backoff), as the close code says:
// 4000-4499 and unknown codes reconnect, 4500-4999 stop, 1001 reconnects at
// once with a little jitter, 1013 and 4029 wait longer, 4501 is not retried
// without a new token. docs/CLIENTS.md has the full table. WithStateFunc
// observes the states (StateConnecting, StateConnected, StateReconnecting,
// StateClosed).
//
// Calls in flight when the link drops fail with CodeUnavailable: the client
// cannot know whether the server ran them. Only calls made with Idempotent
// are sent again on the next connection. Calls made while the client is
// reconnecting wait for the connection, within their context.
//
// Server streams are re-opened on the next connection by sending their
// request again (resubscribe), and so are streams the server ends with
// CodeUnavailable or an unrequested CodeCanceled (after a backoff). The
// reader sees no error; ServerStream.Gap tells it that messages may be
// missing before the current one. Streams opened with NoResubscribe end with
// CodeUnavailable instead.
//
// # Room sequence numbers
//
// Messages of a stream that is a subscription to a room carry the room's
// sequence number (ServerStream.Seq; 0 for messages that are not room
// messages). Consecutive room messages of a stream carry consecutive
// numbers; when one skips (the server could not deliver some, say a
// broadcast lost between server nodes), Gap is true on that message, as it
// is after a re-open. So one check covers every loss the client can see:
//
//	for stream.Receive() {
//		if stream.Gap() {
//			resync() // reload the room's state: messages may be missing
//		}
//		handle(stream.Msg())
//	}
//
// # Heartbeat
//
// The client sends an application PING every interval and replaces the
// connection when the PONG is late (WithHeartbeat; 15 s and 10 s by
// default), so a half-open link, one that swallows traffic without
// closing, is detected within interval + timeout. Client.RTT returns the
// last measured round trip.
//
// # Authentication
//
// WithTokenSource sends "Authorization: Bearer <token>" in each handshake.
// Before the token expires the client asks the source for a new one and
// presents it in band (AuthService/Authenticate) on the open connection;
// after a close 4009 (expired) it asks for a new token and reconnects at
// once, with jitter below Backoff.Initial.
//
// # Origin considerations
//
// A protows server checks the Origin header of browsers against an
// allowlist, and does not check requests without one. The Go client sends
// no Origin unless WithOrigin sets one; set it when a server or a proxy in
// front of it insists on one. Cookies are never sent.
//
// # Concurrency
//
// A Client is safe for concurrent use; calls share its connection and their
// replies arrive in any order. At most WithMaxInFlight calls are in flight
// at once; more wait. A ServerStream is read by one goroutine (Receive, Msg,
// Seq, Gap, Err); Close may be called from any. A BidiStream is used by at
// most two: one sends (Send, CloseSend), one receives (Receive). Each connection is served by a
// reader, a writer and a heartbeat goroutine: the writer is the only one
// that writes to the socket, and it batches queued envelopes into one frame.
// StateFunc is called from the client's goroutine and must not block.
package client
