package client

import "strconv"

// State is the state of a Client's link to the server.
type State int32

// The states, in the order a client usually goes through them.
const (
	// StateConnecting: Dial is opening the first connection.
	StateConnecting State = iota + 1
	// StateConnected: a connection is up; calls go out at once.
	StateConnected
	// StateReconnecting: the connection dropped and the client is waiting
	// (backoff) or dialling again. New calls wait for the connection.
	StateReconnecting
	// StateClosed: the client stopped, because of Close or because the
	// server said not to reconnect (see the close-code table in
	// docs/CLIENTS.md). It is final.
	StateClosed
)

var stateNames = [...]string{
	StateConnecting:   "connecting",
	StateConnected:    "connected",
	StateReconnecting: "reconnecting",
	StateClosed:       "closed",
}

// String returns the state's name in lower case, such as "reconnecting".
func (s State) String() string {
	if s >= StateConnecting && s <= StateClosed {
		return stateNames[s]
	}
	return "state_" + strconv.Itoa(int(s))
}
