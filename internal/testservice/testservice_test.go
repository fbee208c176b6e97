package testservice_test

import (
	"testing"

	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
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
