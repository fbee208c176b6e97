package hub

import (
	"strings"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
)

// Metrics receives a hub's measurements (Config.Metrics). Implementations
// must be safe for concurrent use and fast: Delivered and Dropped are
// called on every broadcast. Package github.com/protows/protows/hub/prommetrics
// adapts it to Prometheus. No method gets a room's name: rooms are
// unbounded, labels must not be.
type Metrics interface {
	// MemberJoined counts a membership that started on this node
	// (Join); MemberLeft one that ended. Their difference is the node's
	// members.
	MemberJoined()
	MemberLeft()
	// Broadcast counts a message for members: kind is "room"
	// (Broadcast), "all" (BroadcastAll) or "direct" (SendTo); origin is
	// "local" for this node's calls and "remote" for messages from other
	// nodes through the broker.
	Broadcast(kind, origin string)
	// Delivered counts n messages queued to local members, by one
	// broadcast (or presence event) to one room or by one direct send.
	Delivered(n int)
	// Dropped counts a message that did not reach one member, by reason:
	// "slow_consumer" (the member's send queue overflowed, so its
	// connection closes with 4008), "closed" (its call or connection
	// ended during the delivery), "encode" (the message does not encode
	// in the member's codec), "send" (the member's Stream.Send failed),
	// "too_large" (the message is larger than the member's connection
	// sends: the member misses it, its seq skips, and it stays).
	// A broker message that does not decode counts once, as "malformed".
	Dropped(reason string)
	// Gap counts a loss of messages from another node, which every local
	// room shows its members as a skip in its sequence numbers; missed is
	// how many of that node's messages were lost, 0 when unknown (the
	// node was heard from for the first time, or restarted).
	Gap(missed uint64)
	// Published observes a message handed to the broker: its kind
	// ("broadcast", "all", "direct", "join", "leave", "state",
	// "heartbeat", "sync", "bye"), how long Broker.Publish took, and its
	// error, nil when the broker took it.
	Published(kind string, d time.Duration, err error)
}

// NopMetrics is a Metrics that records nothing.
type NopMetrics struct{}

var _ Metrics = NopMetrics{}

// MemberJoined implements Metrics.
func (NopMetrics) MemberJoined() {}

// MemberLeft implements Metrics.
func (NopMetrics) MemberLeft() {}

// Broadcast implements Metrics.
func (NopMetrics) Broadcast(string, string) {}

// Delivered implements Metrics.
func (NopMetrics) Delivered(int) {}

// Dropped implements Metrics.
func (NopMetrics) Dropped(string) {}

// Gap implements Metrics.
func (NopMetrics) Gap(uint64) {}

// Published implements Metrics.
func (NopMetrics) Published(string, time.Duration, error) {}

// Origins and kinds of Metrics.Broadcast.
const (
	originLocal  = "local"
	originRemote = "remote"
	kindRoom     = "room"
	kindAll      = "all"
	kindDirect   = "direct"
)

// kindNames are the broker message kinds as Metrics.Published names them:
// "KIND_BROADCAST" is "broadcast".
var kindNames = func() map[hubv1.Kind]string {
	m := make(map[hubv1.Kind]string, len(hubv1.Kind_name))
	for n, name := range hubv1.Kind_name {
		m[hubv1.Kind(n)] = strings.ToLower(strings.TrimPrefix(name, "KIND_"))
	}
	return m
}()
