package harness

import (
	"slices"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"ws://127.0.0.1:8080/ws", "ws://[::1]:1/ws", "ws://localhost:9/x", "ws://127.0.0.2/ws"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"ws://10.0.0.1/ws", "ws://example.com/ws", "wss://127.0.0.1/ws", "http://127.0.0.1/ws", "ws://0.0.0.0/ws", "::"} {
		if err := checkLoopback(bad); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want an error", bad)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	all := []Scenario{{Name: "echo", Impl: "gorilla"}, {Name: "push", Impl: "gorilla"}, {Name: "echo", Impl: "protows"}, {Name: "echo", Impl: "protows-nobatch", Explicit: true},
		{Name: "echo-paced", Impl: "protows", Explicit: true}, {Name: "echo-paced", Impl: "gorilla", Explicit: true}}
	keys := func(ss []Scenario) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Key())
		}
		return out
	}
	tests := []struct {
		only string
		want []string
	}{
		{"", []string{"echo/gorilla", "push/gorilla", "echo/protows"}},
		{"echo", []string{"echo/gorilla", "echo/protows"}},
		{"gorilla", []string{"echo/gorilla", "push/gorilla"}},
		{"echo/protows, echo", []string{"echo/protows", "echo/gorilla"}},
		// A variant runs only when named by its key or impl.
		{"echo/protows-nobatch", []string{"echo/protows-nobatch"}},
		{"protows-nobatch,echo/gorilla", []string{"echo/protows-nobatch", "echo/gorilla"}},
		// A name that only variants have selects them all.
		{"echo-paced", []string{"echo-paced/protows", "echo-paced/gorilla"}},
	}
	for _, tt := range tests {
		got, err := selectScenarios(all, tt.only)
		if err != nil || !slices.Equal(keys(got), tt.want) {
			t.Errorf("selectScenarios(%q) = %v, %v; want %v", tt.only, keys(got), err, tt.want)
		}
	}
	if _, err := selectScenarios(all, "echo/nats"); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}

func TestParamsPerConn(t *testing.T) {
	tests := []struct {
		p    Params
		n    int
		want int64
	}{
		{Params{Messages: 100}, 4, 25},
		{Params{Messages: 101}, 4, 26},
		{Params{Messages: 10}, 0, 10},
		{Params{Duration: time.Second}, 4, 1 << 40},
	}
	for _, tt := range tests {
		if got := tt.p.PerConn(tt.n); got != tt.want {
			t.Errorf("%+v.PerConn(%d) = %d, want %d", tt.p, tt.n, got, tt.want)
		}
	}
}

func TestAuto(t *testing.T) {
	tests := []struct {
		v, def int
		size   payload.Size
		want   int
	}{
		{0, 8, payload.Small, 8},
		{0, 8, payload.Medium, 8},
		{0, 8, payload.Large, 2},
		{0, 256, payload.Large, 16},
		{5, 8, payload.Large, 5},
	}
	for _, tt := range tests {
		if got := auto(tt.v, tt.def, tt.size); got != tt.want {
			t.Errorf("auto(%d, %d, %s) = %d, want %d", tt.v, tt.def, tt.size, got, tt.want)
		}
	}
}

func TestRunOrder(t *testing.T) {
	var jobs []Job
	for _, impl := range []string{"protows", "gorilla"} {
		for _, size := range []payload.Size{payload.Small, payload.Large} {
			for _, c := range []string{CodecProto, CodecJSON} {
				jobs = append(jobs, Job{Scenario: Scenario{Name: "echo", Impl: impl}, Params: Params{Codec: c, Size: size}})
			}
		}
	}
	jobs = append(jobs, Job{Scenario: Scenario{Name: "idle", Impl: "protows"}, Params: Params{Codec: CodecProto, Size: payload.Small}})
	var got []string
	for _, i := range RunOrder(jobs) {
		got = append(got, jobs[i].ID())
	}
	want := []string{
		"echo/protows/proto/small", "echo/gorilla/proto/small",
		"echo/protows/json/small", "echo/gorilla/json/small",
		"echo/protows/proto/large", "echo/gorilla/proto/large",
		"echo/protows/json/large", "echo/gorilla/json/large",
		"idle/protows/proto/small",
	}
	if !slices.Equal(got, want) {
		t.Errorf("run order\n got %v\nwant %v", got, want)
	}
}
