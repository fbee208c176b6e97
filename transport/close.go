package transport

import "unicode/utf8"

// The close codes of docs/PROTOCOL.md, section 9. 4000-4499 tell a client
// to reconnect, 4500-4999 not to until something changes.
const (
	// CloseNormal: normal close.
	CloseNormal = 1000
	// CloseGoingAway: the server is shutting down (Server.Shutdown).
	CloseGoingAway = 1001
	// CloseProtocolError: a kind a client may not send, kind 0, a REQUEST
	// with id 0 or with the id of a call in flight.
	CloseProtocolError = 1002
	// CloseUnsupportedData: a text frame on the Protobuf codec or a binary
	// frame on the JSON codec.
	CloseUnsupportedData = 1003
	// CloseInvalidPayload: a frame that does not decode, or holds more
	// than 1024 envelopes.
	CloseInvalidPayload = 1007
	// CloseMessageTooBig: a message over Config.MaxMessageSize, counted
	// after decompression.
	CloseMessageTooBig = 1009
	// CloseInternalError: the transport itself failed: an envelope it
	// produced (a reply, an ERROR, a PONG) does not encode with the
	// connection's codec, even as a fallback ERROR internal. Sent after
	// what is queued. A handler's panic or error is not one: it gets an
	// ERROR reply and the connection stays.
	CloseInternalError = 1011
	// CloseTryAgainLater: the server is overloaded: a REQUEST found
	// Config.MaxCalls calls running. Sent once the connection's unary
	// calls finished (its streams are ended with unavailable). Handshakes
	// beyond MaxConns get HTTP 503 instead.
	CloseTryAgainLater = 1013
	// CloseHeartbeatTimeout: nothing arrived within Config.ReadTimeout.
	CloseHeartbeatTimeout = 4002
	// CloseSlowConsumer: the send queue overflowed.
	CloseSlowConsumer = 4008
	// CloseTokenExpired: the credential expired and was not refreshed.
	CloseTokenExpired = 4009
	// CloseRateLimited: the client exceeded Config.RateLimit.
	CloseRateLimited = 4029
	// CloseUnauthenticated: authentication failed or did not come within
	// Config.AuthTimeout.
	CloseUnauthenticated = 4501
	// CloseForbidden: Config.Authorize refused an authenticated
	// principal, in the handshake or on an in-band Authenticate (first or
	// refresh). Sent after ERROR permission_denied.
	CloseForbidden = 4503
)

// maxCloseReason is the most bytes of reason a close frame holds.
const maxCloseReason = 123

// truncateReason cuts s to at most 123 bytes without splitting a UTF-8
// sequence.
func truncateReason(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
