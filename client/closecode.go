package client

import (
	"fmt"

	"github.com/protows/protows"
)

// action is what the client does after a connection ended.
type action int

const (
	// actStop: do not reconnect; the client closes.
	actStop action = iota + 1
	// actBackoff: reconnect after an exponential, jittered delay.
	actBackoff
	// actNow: reconnect at once, with a small jitter (close 1001).
	actNow
	// actSlow: the server is overloaded or rate limits (1013, 4029, HTTP
	// 503): reconnect after at least Initial plus the backoff.
	actSlow
	// actNewToken: reconnect with backoff, but only with a token that
	// differs from the one the server refused (close 4501, HTTP 401).
	actNewToken
	// actRefresh: get a new token, then reconnect at once with a small
	// jitter, as for actNow (close 4009): an expired token says nothing
	// about the server's health.
	actRefresh
)

// classifyClose maps a close code received from the server (or 1006 for a
// connection that dropped without one) to the client's action, and to the
// code of the error that calls get when the client stops. It is the table of
// docs/CLIENTS.md; TestCloseCodeTable checks the two agree. The codes are
// the protocol's (protows.CloseCode, docs/PROTOCOL.md section 9), including
// 4505, which no v1 server sends but a later one that drops v1 will.
func classifyClose(code protows.CloseCode) (action, protows.Code) {
	switch code {
	case protows.CloseNormal:
		return actStop, protows.CodeUnavailable
	case protows.CloseGoingAway:
		return actNow, protows.CodeUnavailable
	case protows.CloseProtocolError, protows.CloseUnsupportedData,
		protows.CloseInvalidPayload, protows.CloseMessageTooBig:
		// The server says this client broke the protocol: retrying would
		// break it again.
		return actStop, protows.CodeInternal
	case protows.CloseTokenExpired:
		return actRefresh, protows.CodeUnauthenticated
	case protows.CloseUnauthenticated:
		return actNewToken, protows.CodeUnauthenticated
	case protows.CloseForbidden:
		return actStop, protows.CodePermissionDenied
	case protows.CloseUnsupportedVersion:
		return actStop, protows.CodeFailedPrecondition
	case protows.CloseTryAgainLater, protows.CloseRateLimited:
		return actSlow, protows.CodeUnavailable
	}
	if reconnect, ok := code.Reconnect(); ok {
		if reconnect {
			return actBackoff, protows.CodeUnavailable
		}
		return actStop, protows.CodeUnavailable
	}
	// 1006, 1011 and everything unknown: back off.
	return actBackoff, protows.CodeUnavailable
}

// classifyHandshake maps the HTTP status of a refused upgrade
// (docs/PROTOCOL.md, section 1.2) to the client's action.
func classifyHandshake(status int) (action, protows.Code) {
	switch status {
	case 401:
		return actNewToken, protows.CodeUnauthenticated
	case 403:
		return actStop, protows.CodePermissionDenied
	case 400, 404, 426:
		// A wrong URL or a server that speaks none of our subprotocols:
		// nothing changes by retrying.
		return actStop, protows.CodeFailedPrecondition
	case 503:
		// A connection limit; Retry-After, when given, adds to this.
		return actSlow, protows.CodeUnavailable
	default:
		// 502 and 504 from proxies, and anything else.
		return actBackoff, protows.CodeUnavailable
	}
}

// closeText names a close code for messages.
func closeText(code protows.CloseCode, reason string) string {
	if reason != "" {
		return fmt.Sprintf("close %d (%s)", code, reason)
	}
	return fmt.Sprintf("close %d", code)
}
