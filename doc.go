// Package protows holds the vocabulary shared by every part of protows, a
// framework for typed, Protobuf-framed messaging over WebSocket: status
// codes, the error type that carries them, and method identifiers.
//
// The parts live in their own packages:
//
//   - codec: the Protobuf and JSON encodings of the wire protocol.
//   - transport: the WebSocket server (an http.Handler).
//   - router: typed handlers, interceptors and dispatch.
//   - client: the Go client.
//
// A handler reports a failure with a typed error, and a client finds its
// code again with errors.As or CodeOf:
//
//	return nil, protows.Errorf(protows.CodeNotFound, "room %q does not exist", name)
//
//	if protows.CodeOf(err) == protows.CodeNotFound { ... }
//
// docs/PROTOCOL.md describes the wire protocol itself.
package protows
