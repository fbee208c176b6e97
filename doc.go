// Package protows holds the vocabulary shared by every part of protows, a
// framework for typed, Protobuf-framed messaging over WebSocket: status
// codes, the error type that carries them, the close codes of the protocol
// (CloseCode), and method identifiers.
//
// The parts live in their own packages:
//
//   - codec: the Protobuf and JSON encodings of the wire protocol.
//   - transport: the WebSocket server (an http.Handler); its optional
//     integrations are transport/jwtauth (JWT authentication) and
//     transport/prommetrics (Prometheus metrics).
//   - router: typed handlers, interceptors and dispatch.
//   - reflection: server reflection, off by default, registered on a router
//     so that generic tools can list, describe and call its services.
//   - client: the Go client, with interceptors.
//   - hub: rooms that broadcast typed streams to their members, with
//     presence; hub/natsbroker joins the hubs of several nodes over NATS,
//     hub/prommetrics exports the hub's metrics to Prometheus.
//   - otelprotows: OpenTelemetry tracing of server and client calls.
//
// Commands: cmd/protoc-gen-protows generates Go handlers and clients,
// cmd/protoc-gen-protows-es TypeScript clients (an npm package),
// cmd/protows is the command-line tool (list, describe, call, listen,
// decode), and cmd/protows-testserver serves the test service that the
// TypeScript runtime's tests and other implementations run against. The TypeScript
// runtime is the npm package @protows/client (client/ts).
//
// A handler reports a failure with a typed error, and a client finds its
// code again with errors.As or CodeOf:
//
//	return nil, protows.Errorf(protows.CodeNotFound, "room %q does not exist", name)
//
//	if protows.CodeOf(err) == protows.CodeNotFound { ... }
//
// CodeOf(nil) is CodeOK, whose String is "ok", so code that reports every
// call's outcome writes CodeOf(err) for successes too; no error carries it.
// Errors from the Go client name the method of the failed call
// (Error.Method).
//
// docs/PROTOCOL.md describes the wire protocol itself; docs/DEPLOYMENT.md
// how to run servers in production.
package protows
