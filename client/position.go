package client

import protowsv1 "github.com/protows/protows/gen/go/protows/v1"

// Position is a place in a room with history (docs/PROTOCOL.md, section
// 14): the room's epoch and the offset of a message in it.
type Position struct {
	// Epoch names the room's history; offsets of one epoch name the same
	// messages on every server node that shares it.
	Epoch string
	// Offset is the offset of the last message had.
	Offset uint64
}

// Recovery is the outcome of the (re-)opening of a stream of a room with
// history.
type Recovery int

// The outcomes of a (re-)opening (protows.v1.Recovery).
const (
	// NotResumed: the stream had no position to resume from (its first
	// opening); it starts with the history asked for (WithHistory).
	NotResumed Recovery = iota
	// Recovered: nothing was lost; every message after the stream's
	// position follows.
	Recovered
	// EpochChanged: unrecoverable; the room's history was lost (a server
	// that kept it in memory restarted).
	EpochChanged
	// TooOld: unrecoverable; the missed messages already left the
	// history (older than its bounds).
	TooOld
	// HistoryUnavailable: unrecoverable for now; the server could not
	// read the history. The stream goes on with live messages.
	HistoryUnavailable
)

// String returns the outcome's name.
func (r Recovery) String() string {
	switch r {
	case NotResumed:
		return "not resumed"
	case Recovered:
		return "recovered"
	case EpochChanged:
		return "epoch changed"
	case TooOld:
		return "too old"
	case HistoryUnavailable:
		return "history unavailable"
	}
	return "unknown recovery"
}

// StreamPosition is what the server tells of a stream of a room with
// history when it (re-)opens (STREAM_POSITION).
type StreamPosition struct {
	// Epoch is the room's epoch.
	Epoch string
	// Offset is the offset of the last message before those that
	// follow: the next carries Offset+1 as its Seq.
	Offset uint64
	// Latest is the room's latest offset when the position was taken:
	// the messages up to it are replayed from the history.
	Latest uint64
	// Recovery is the outcome.
	Recovery Recovery
}

// Replayed returns how many of the messages that follow are replayed from
// the history rather than live: for Recovered, the messages that were
// missed.
func (p StreamPosition) Replayed() uint64 {
	if p.Latest < p.Offset {
		return 0
	}
	return p.Latest - p.Offset
}

// Lost reports whether the outcome is an unrecoverable gap: messages may
// be missing before those that follow. Outcomes this client does not know
// count as lost.
func (p StreamPosition) Lost() bool {
	return p.Recovery != NotResumed && p.Recovery != Recovered
}

func streamPositionOf(p *protowsv1.Position) StreamPosition {
	sp := StreamPosition{Epoch: p.GetEpoch(), Offset: p.GetOffset(), Latest: p.GetLatest()}
	switch p.GetRecovery() {
	case protowsv1.Recovery_RECOVERY_RECOVERED:
		sp.Recovery = Recovered
	case protowsv1.Recovery_RECOVERY_EPOCH_CHANGED:
		sp.Recovery = EpochChanged
	case protowsv1.Recovery_RECOVERY_TOO_OLD:
		sp.Recovery = TooOld
	case protowsv1.Recovery_RECOVERY_UNAVAILABLE:
		sp.Recovery = HistoryUnavailable
	case protowsv1.Recovery_RECOVERY_UNSPECIFIED:
		sp.Recovery = NotResumed
	default:
		// An outcome newer than this client: not a recovery it knows.
		sp.Recovery = Recovery(p.GetRecovery())
	}
	return sp
}
