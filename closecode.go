package protows

import "strconv"

// CloseCode is the code of a WebSocket close frame. The codes the protocol
// gives a meaning to are the constants below, the table of docs/PROTOCOL.md,
// section 9. Application codes follow one rule, so that a client knows what
// to do even with a code it has never seen: 4000-4499 ask it to reconnect,
// 4500-4999 not to until something changes (a new token, a new version).
type CloseCode uint16

// The close codes of the protocol, in ascending order.
const (
	// CloseNormal: normal close.
	CloseNormal CloseCode = 1000
	// CloseGoingAway: the server is shutting down or draining.
	CloseGoingAway CloseCode = 1001
	// CloseProtocolError: the peer broke the protocol: a kind a client may
	// not send, kind 0, a REQUEST with id 0 or with the id of a call in
	// flight, a WebSocket frame RFC 6455 forbids (a 64-bit length with its
	// most significant bit set, say).
	CloseProtocolError CloseCode = 1002
	// CloseUnsupportedData: the wrong frame type for the negotiated codec,
	// a text frame on the Protobuf codec or a binary frame on the JSON
	// codec.
	CloseUnsupportedData CloseCode = 1003
	// CloseAbnormal is never sent: it is what a client sees when the
	// connection dropped without a close frame (or its heartbeat found the
	// link dead), and what a browser reports for a refused upgrade.
	CloseAbnormal CloseCode = 1006
	// CloseInvalidPayload: a frame that does not decode, or holds more than
	// 1024 envelopes; a text message that is not UTF-8 (RFC 6455 section
	// 8.1); compressed data that does not inflate.
	CloseInvalidPayload CloseCode = 1007
	// CloseMessageTooBig: a message over the configured limit, counted
	// after decompression.
	CloseMessageTooBig CloseCode = 1009
	// CloseInternalError: the server itself failed: an envelope it produced
	// (a reply, an ERROR, a PONG) does not encode, even as a fallback ERROR
	// internal. A handler's panic or error is not one: it gets an ERROR
	// reply and the connection stays.
	CloseInternalError CloseCode = 1011
	// CloseTryAgainLater: the server is overloaded: a REQUEST found the
	// server's maximum of calls running. Sent once the connection's unary
	// calls finished (its streams are ended with unavailable).
	CloseTryAgainLater CloseCode = 1013
	// CloseHeartbeatTimeout: nothing arrived within the read timeout.
	CloseHeartbeatTimeout CloseCode = 4002
	// CloseSlowConsumer: the send queue overflowed.
	CloseSlowConsumer CloseCode = 4008
	// CloseTokenExpired: the credential expired and was not refreshed.
	CloseTokenExpired CloseCode = 4009
	// CloseRateLimited: the client exceeded the rate limit, which counts
	// its envelopes and its WebSocket ping and pong frames.
	CloseRateLimited CloseCode = 4029
	// CloseUnauthenticated: authentication failed or did not come in time.
	CloseUnauthenticated CloseCode = 4501
	// CloseForbidden: the server's authorization policy refused the
	// authenticated principal. Sent after ERROR permission_denied.
	CloseForbidden CloseCode = 4503
	// CloseUnsupportedVersion: the server does not speak this version of
	// the protocol. Reserved: a v1 server never sends it; a later server
	// that drops v1 will, and a v1 client stops on it.
	CloseUnsupportedVersion CloseCode = 4505
)

// closeCodes describes the codes of the protocol, in ascending order.
var closeCodes = [...]struct {
	code          CloseCode
	name, meaning string
}{
	{CloseNormal, "normal", "normal close"},
	{CloseGoingAway, "going_away", "server shutting down or draining"},
	{CloseProtocolError, "protocol_error", "protocol violation"},
	{CloseUnsupportedData, "unsupported_data", "wrong frame type"},
	{CloseAbnormal, "abnormal", "dropped without a close frame; missed heartbeat"},
	{CloseInvalidPayload, "invalid_payload", "undecodable frame"},
	{CloseMessageTooBig, "message_too_big", "message too large"},
	{CloseInternalError, "internal_error", "internal server error"},
	{CloseTryAgainLater, "try_again_later", "server overloaded"},
	{CloseHeartbeatTimeout, "heartbeat_timeout", "heartbeat timeout"},
	{CloseSlowConsumer, "slow_consumer", "slow consumer"},
	{CloseTokenExpired, "token_expired", "token expired"},
	{CloseRateLimited, "rate_limited", "rate limited"},
	{CloseUnauthenticated, "unauthenticated", "not authenticated"},
	{CloseForbidden, "forbidden", "forbidden"},
	{CloseUnsupportedVersion, "unsupported_version", "unsupported protocol version"},
}

// CloseCodes returns the close codes of the protocol (the constants), in
// ascending order.
func CloseCodes() []CloseCode {
	codes := make([]CloseCode, len(closeCodes))
	for i, d := range closeCodes {
		codes[i] = d.code
	}
	return codes
}

// lookup returns the index of c in closeCodes, or -1.
func (c CloseCode) lookup() int {
	for i := range closeCodes {
		if closeCodes[i].code == c {
			return i
		}
	}
	return -1
}

// String returns the code's name in lower snake case, such as
// "slow_consumer", or "close_N" for a code the protocol does not define.
func (c CloseCode) String() string {
	if i := c.lookup(); i >= 0 {
		return closeCodes[i].name
	}
	return "close_" + strconv.FormatUint(uint64(c), 10)
}

// Meaning describes the code in a few words, such as "slow consumer" (the
// "meaning" column of the close-code table of docs/CLIENTS.md), or returns
// "" for a code the protocol does not define.
func (c CloseCode) Meaning() string {
	if i := c.lookup(); i >= 0 {
		return closeCodes[i].meaning
	}
	return ""
}

// Reconnect reports the class of an application code (4000-4999): true for
// 4000-4499, "reconnect", false for 4500-4999, "do not reconnect until
// something changes". ok is false outside 4000-4999, where the class rule
// does not apply.
func (c CloseCode) Reconnect() (reconnect, ok bool) {
	switch {
	case c >= 4000 && c <= 4499:
		return true, true
	case c >= 4500 && c <= 4999:
		return false, true
	}
	return false, false
}
