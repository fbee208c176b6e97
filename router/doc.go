// Package router dispatches protows calls to typed handlers. A Router is
// the transport.Handler of a transport.Server; generated code registers
// services on it (RegisterXHandler), or handlers are registered by hand:
//
//	r := router.New(router.WithInterceptors(logCalls))
//	err := router.HandleUnary(r, "/chat.v1.ChatService/Send",
//		func(ctx context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
//			conn, _ := transport.ConnFromContext(ctx) // id, principal, codec
//			...
//		})
//	err = router.HandleServerStream(r, "/chat.v1.ChatService/Watch",
//		func(ctx context.Context, req *chatv1.WatchRequest, s router.Stream[*chatv1.RoomEvent]) error {
//			return s.Send(&chatv1.RoomEvent{...})
//		})
//	err = router.HandleClientStream(r, "/chat.v1.ChatService/Upload",
//		func(ctx context.Context, s router.ClientStream[*chatv1.Line]) (*chatv1.Summary, error) {
//			for s.Receive() {
//				...s.Msg()
//			}
//			return &chatv1.Summary{...}, s.Err()
//		})
//	err = router.HandleBidiStream(r, "/chat.v1.ChatService/Talk",
//		func(ctx context.Context, s router.BidiStream[*chatv1.Line, *chatv1.Line]) error {
//			line, err := s.Receive() // io.EOF once the client is done sending
//			...
//			return s.Send(line)
//		})
//	srv := transport.NewServer(r, transport.Config{})
//
// A stream's Send waits while the client has granted no credit or the
// connection's send queue is at its back-pressure threshold
// (docs/PROTOCOL.md, sections 4.6 and 4.7), and returns once the call, the
// handler's context or the connection ended; a ClientStream or
// BidiStream's Receive grants the client credit as the handler reads.
//
// # Registration
//
// Registration fails (with an error wrapping one of the Err variables)
// when a request or response type is not a Protobuf message, the name is
// not "/package.Service/Method", the method is registered twice, its id
// (protows.MethodID) is 0 or collides with another method's, or it is the
// transport's own AuthenticateMethod. Register before serving.
//
// # Calls
//
// A handler's context carries the connection and the call
// (transport.ConnFromContext, transport.CallFromContext for request
// metadata) and is cancelled when the client cancels the call or the
// connection ends. A returned *protows.Error reaches the client with its
// code and message; other errors become unknown (context errors canceled
// and deadline_exceeded). A panic becomes an internal error reply; the
// connection and the process survive. An unknown method gets
// unimplemented and a payload that does not decode gets invalid_argument,
// both from the transport, before any handler runs.
//
// # Interceptors
//
// Interceptors wrap every call, outermost first: router-wide ones
// (WithInterceptors), then the method's timeout and its own interceptors
// (WithHandlerInterceptors). Panic recovery is always outermost.
//
// # Timeouts
//
// WithTimeout bounds unary calls only, so that one option given to a whole
// service bounds its request-reply methods without ending its
// subscriptions:
//
//	chatv1.RegisterChatServiceHandler(r, svc, router.WithTimeout(5*time.Second))
//	// Send gets 5 s; Watch lives until the client leaves.
//
// A stream that should end by itself after a while takes WithStreamTimeout.
// The client's own deadline is the client's business: when its context
// ends it sends CANCEL, which cancels the handler's context.
package router
