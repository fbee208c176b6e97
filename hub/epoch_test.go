package hub

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
)

// losingHistory is a memory store that loses its history on demand, as a
// shared store deleted and made anew: Lose swaps in a fresh one, with
// another epoch, and tells the hub (EpochWatcher).
type losingHistory struct {
	mu      sync.Mutex
	cur     HistoryStore
	deliver func(*Entry)
	onEpoch func(string)
}

var _ EpochWatcher = (*losingHistory)(nil)

func (s *losingHistory) store() HistoryStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *losingHistory) OnEpochChange(f func(string)) { s.onEpoch = f }
func (s *losingHistory) Open(ctx context.Context, node string, deliver func(*Entry)) error {
	s.deliver = deliver
	return s.store().Open(ctx, node, deliver)
}
func (s *losingHistory) Append(ctx context.Context, e *Entry) error {
	return s.store().Append(ctx, e)
}
func (s *losingHistory) Read(ctx context.Context, room string, after uint64, limit int) (HistoryPage, error) {
	return s.store().Read(ctx, room, after, limit)
}
func (s *losingHistory) Shared() bool { return false }
func (s *losingHistory) Close() error { return s.store().Close() }

func (s *losingHistory) epoch() string { return s.store().(*memoryHistory).epoch }

// Lose replaces the history with an empty one, in a new epoch.
func (s *losingHistory) Lose(t *testing.T) {
	t.Helper()
	fresh := NewMemoryHistory(HistoryLimits{})
	if err := fresh.Open(context.Background(), "n", s.deliver); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	old := s.cur
	s.cur = fresh
	s.mu.Unlock()
	_ = old.Close()
	s.onEpoch(fresh.(*memoryHistory).epoch)
}

// TestEpochChangeEndsMembers: when the store's history is lost while
// members are joined, the members of rooms with history (live ones and
// one still catching up) end with an unavailable error wrapping
// ErrEpochChanged, so that their clients re-open; the re-open is told the
// epoch changed. Rooms without history are left alone.
func TestEpochChangeEndsMembers(t *testing.T) {
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(cd.Name(), func(t *testing.T) {
			store := &losingHistory{cur: NewMemoryHistory(HistoryLimits{})}
			h := historyHub(t, Config[*msg]{History: store, HistoryRooms: func(room string) bool { return room != "plain" }})
			bcast(t, h, "r", 1, 3)
			old := store.epoch()
			f := newFake("c1", cd)
			live := joinFrom(t, h, "r", f, 5, joinStart{resume: true})
			plain := joinFake(t, h, "plain", newFake("c2", cd), 7)
			// A member that cannot take its replay is still catching up.
			stuck := stuckCall{fakeCall: newFake("c3", cd).call(9), waiting: make(chan struct{}, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m := fakeMember(t, ctx, h, "r", stuck, "c3")
			m.start = joinStart{resume: true, positions: true, history: 3}
			catching := make(chan error, 1)
			go func() { catching <- h.join(ctx, m) }()
			select {
			case <-stuck.waiting:
			case <-time.After(5 * time.Second):
				t.Fatal("the replay did not start")
			}

			store.Lose(t)
			liveErr := live.end(t)
			live.err <- liveErr // for joinFrom's cleanup
			for name, err := range map[string]error{"live": liveErr, "catching": <-catching} {
				if !errors.Is(err, ErrEpochChanged) || protows.CodeOf(err) != protows.CodeUnavailable {
					t.Errorf("%s member: Join returned %v, want unavailable wrapping ErrEpochChanged", name, err)
				}
			}
			if !hasMember(h.Members("plain"), plain.id) {
				t.Error("the member of a room without history was ended")
			}

			// The client re-opens from its position, in the old epoch.
			f2 := newFake("c1", cd)
			joinFrom(t, h, "r", f2, 11, joinStart{resume: true, epoch: old, offset: 3, history: 5})
			waitFor(t, func() bool { return len(f2.received(t)) >= 1 })
			bcast(t, h, "r", 4, 4)
			f2.waitCount(t, 2)
			if got, want := stream(t, f2), []string{"P(RECOVERY_EPOCH_CHANGED 0/0)", "4@1"}; !slices.Equal(got, want) {
				t.Errorf("re-open after the loss: %v, want %v", got, want)
			}
			if store.epoch() == old {
				t.Fatal("the epoch did not change")
			}
		})
	}
}

// TestEpochChangeRefusesStaleStart: a member whose start was read before
// the epoch changed, and that joins after, is refused the same way
// instead of being given offsets of the lost history.
func TestEpochChangeRefusesStaleStart(t *testing.T) {
	store := &losingHistory{cur: NewMemoryHistory(HistoryLimits{})}
	h := historyHub(t, Config[*msg]{History: store})
	m := fakeMember(t, context.Background(), h, "r", newFake("c1", codec.Proto()).call(1), "c1")
	m.epochs = h.epochs.Load()
	store.Lose(t)
	err := h.add(m)
	if !errors.Is(err, ErrEpochChanged) || protows.CodeOf(err) != protows.CodeUnavailable {
		t.Fatalf("add after the epoch changed: %v, want unavailable wrapping ErrEpochChanged", err)
	}
	if len(h.Members("r")) != 0 {
		t.Errorf("members %v", h.Members("r"))
	}
}
