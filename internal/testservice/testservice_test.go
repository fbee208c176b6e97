package testservice_test

import (
	"context"
	"net/http/httptest"
	"testing"

	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"google.golang.org/protobuf/proto"
)

// TestRegister checks that Register puts every method of the service on
// the router, under the generated names and ids, with the right shape.
func TestRegister(t *testing.T) {
	r := router.New()
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id     uint32
		name   string
		stream bool
	}{
		{testv1.TestServiceEchoMethodID, testservice.EchoMethod, false},
		{testv1.TestServiceFailMethodID, testservice.FailMethod, false},
		{testv1.TestServiceSleepMethodID, testservice.SleepMethod, false},
		{testv1.TestServiceCountMethodID, testservice.CountMethod, true},
		{testv1.TestServiceWhoamiMethodID, testservice.WhoamiMethod, false},
	} {
		m, ok := r.Lookup(tc.id)
		if !ok {
			t.Errorf("%s (0x%08x) not registered", tc.name, tc.id)
			continue
		}
		if m.Name != tc.name || m.ServerStream != tc.stream {
			t.Errorf("0x%08x: %s stream=%v, want %s stream=%v", tc.id, m.Name, m.ServerStream, tc.name, tc.stream)
		}
	}
	// The generated registration refuses a second copy.
	if err := testservice.Register(r); err == nil {
		t.Error("registering the service twice succeeded")
	}
}

// TestRuns: the interceptor counts Echo runs per text, errors included,
// and nothing else; ServeHTTP reports them.
func TestRuns(t *testing.T) {
	var rs testservice.Runs
	h := rs.Interceptor(func(context.Context, *router.Call) (proto.Message, error) {
		return &testv1.EchoResponse{}, nil
	})
	for _, req := range []proto.Message{
		&testv1.EchoRequest{Text: "a"}, &testv1.EchoRequest{Text: "a"}, &testv1.EchoRequest{Text: "b"}, &testv1.FailRequest{Message: "a"},
	} {
		if _, err := h(context.Background(), &router.Call{Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	if rs.Of("a") != 2 || rs.Of("b") != 1 || rs.Of("c") != 0 {
		t.Fatalf("runs a=%d b=%d c=%d, want 2, 1, 0", rs.Of("a"), rs.Of("b"), rs.Of("c"))
	}
	w := httptest.NewRecorder()
	rs.ServeHTTP(w, httptest.NewRequest("GET", "/runs?text=a", nil))
	if w.Code != 200 || w.Body.String() != "2" {
		t.Fatalf("GET /runs?text=a: %d %q", w.Code, w.Body.String())
	}
}
