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

// Close codes the client reacts to by name (docs/PROTOCOL.md, section 9).
const (
	closeNormal         = 1000
	closeGoingAway      = 1001
	closeProtocolError  = 1002
	closeUnsupported    = 1003
	closeAbnormal       = 1006
	closeInvalidPayload = 1007
	closeTooBig         = 1009
	closeInternal       = 1011
	closeTryAgainLater  = 1013
	closeHeartbeat      = 4002
	closeSlowConsumer   = 4008
	closeTokenExpired   = 4009
	closeRateLimited    = 4029
	closeUnauthorized   = 4501
	closeForbidden      = 4503
	closeBadVersion     = 4505
)

// classifyClose maps a close code received from the server (or 1006 for a
// connection that dropped without one) to the client's action, and to the
// code of the error that calls get when the client stops. It is the table of
// docs/CLIENTS.md; TestClassifyClose checks the two agree.
func classifyClose(code int) (action, protows.Code) {
	switch {
	case code == closeNormal:
		return actStop, protows.CodeUnavailable
	case code == closeGoingAway:
		return actNow, protows.CodeUnavailable
	case code == closeProtocolError, code == closeUnsupported,
		code == closeInvalidPayload, code == closeTooBig:
		// The server says this client broke the protocol: retrying would
		// break it again.
		return actStop, protows.CodeInternal
	case code == closeTokenExpired:
		return actRefresh, protows.CodeUnauthenticated
	case code == closeUnauthorized:
		return actNewToken, protows.CodeUnauthenticated
	case code == closeForbidden:
		return actStop, protows.CodePermissionDenied
	case code == closeBadVersion:
		return actStop, protows.CodeFailedPrecondition
	case code == closeTryAgainLater, code == closeRateLimited:
		return actSlow, protows.CodeUnavailable
	case code >= 4000 && code <= 4499:
		return actBackoff, protows.CodeUnavailable
	case code >= 4500 && code <= 4999:
		return actStop, protows.CodeUnavailable
	default:
		// 1006, 1011 and everything unknown: back off.
		return actBackoff, protows.CodeUnavailable
	}
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
func closeText(code int, reason string) string {
	if reason != "" {
		return fmt.Sprintf("close %d (%s)", code, reason)
	}
	return fmt.Sprintf("close %d", code)
}
