package hub

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestWireRoundTrip(t *testing.T) {
	joined := time.Unix(1795000000, 123456789)
	tests := []wireMsg{
		{kind: wireHeartbeat, origin: "n1", incarnation: 1<<64 - 1, seq: 1},
		{kind: wireBroadcast, origin: "n1", incarnation: 7, seq: 300, room: "lobby", payload: []byte{1, 2, 3}},
		{kind: wireDirect, origin: "n2", incarnation: 7, seq: 2, target: "n1/c-1#3", payload: []byte("x")},
		{kind: wireState, origin: "n3", incarnation: 9, seq: 4, more: true, part: 3, members: []Member{
			{ConnID: "c-1", CallID: 3, Subject: "alice", Room: "lobby", JoinedAt: joined},
			{ConnID: "c-2", CallID: 1, Room: "zoë", JoinedAt: joined},
		}},
	}
	for _, want := range tests {
		got, err := unmarshalWire(want.marshal())
		if err != nil {
			t.Fatalf("%v: %v", want.kind, err)
		}
		for i := range got.members {
			if !got.members[i].JoinedAt.Equal(want.members[i].JoinedAt) {
				t.Errorf("joined at %v, want %v", got.members[i].JoinedAt, want.members[i].JoinedAt)
			}
			got.members[i].JoinedAt = want.members[i].JoinedAt
		}
		if len(got.payload) == 0 {
			got.payload = want.payload
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("round trip\n got %+v\nwant %+v", *got, want)
		}
	}
}

func TestWireRejectsGarbage(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": (&wireMsg{kind: wireJoin, origin: "n1", members: []Member{{ConnID: "c"}}}).marshal()[:12],
		"bad tag":   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"no origin": (&wireMsg{kind: wireHeartbeat}).marshal(),
	} {
		if _, err := unmarshalWire(b); !errors.Is(err, errWire) {
			t.Errorf("%s: err %v, want errWire", name, err)
		}
	}
}
