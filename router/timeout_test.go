package router_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	protows "github.com/protows/protows"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/router"
	"google.golang.org/protobuf/proto"
)

// waitingService's Sleep and Count wait for their context or for an hour,
// and say how long they ran.
type waitingService struct {
	testv1.UnimplementedTestServiceHandler
}

func (waitingService) Sleep(ctx context.Context, _ *testv1.SleepRequest) (*testv1.SleepResponse, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Hour):
		return &testv1.SleepResponse{}, nil
	}
}

func (waitingService) Count(ctx context.Context, _ *testv1.CountRequest, _ router.Stream[*testv1.CountResponse]) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Hour):
		return nil
	}
}

// timed serves one call of method on r and returns how long it ran, in the
// bubble's fake time, and its error.
func timed(t *testing.T, r *router.Router, method string, req proto.Message) (time.Duration, error) {
	t.Helper()
	m, ok := r.Lookup(protows.MethodID(method))
	if !ok {
		t.Fatalf("%s not registered", method)
	}
	start := time.Now()
	_, err := m.Serve(context.Background(), nil, req)
	return time.Since(start), err
}

// The case: WithTimeout given to a whole service's RegisterXHandler
// bounds its unary methods and leaves its streams alone; WithStreamTimeout
// bounds the streams and leaves the unary methods alone.
func TestTimeoutsByKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []router.HandlerOption
		unary      time.Duration // how long Sleep runs
		unaryCode  protows.Code
		stream     time.Duration // how long Count runs
		streamCode protows.Code
	}{
		{"none", nil, time.Hour, protows.CodeOK, time.Hour, protows.CodeOK},
		{"WithTimeout", []router.HandlerOption{router.WithTimeout(time.Second)},
			time.Second, protows.CodeDeadlineExceeded, time.Hour, protows.CodeOK},
		{"WithStreamTimeout", []router.HandlerOption{router.WithStreamTimeout(3 * time.Second)},
			time.Hour, protows.CodeOK, 3 * time.Second, protows.CodeDeadlineExceeded},
		{"both", []router.HandlerOption{router.WithTimeout(time.Second), router.WithStreamTimeout(3 * time.Second)},
			time.Second, protows.CodeDeadlineExceeded, 3 * time.Second, protows.CodeDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := router.New()
				if err := testv1.RegisterTestServiceHandler(r, waitingService{}, tt.opts...); err != nil {
					t.Fatal(err)
				}
				d, err := timed(t, r, testv1.TestServiceSleepMethod, &testv1.SleepRequest{})
				if d != tt.unary || protows.CodeOf(err) != tt.unaryCode {
					t.Errorf("unary ran %v and ended with %v (%v), want %v and %v", d, protows.CodeOf(err), err, tt.unary, tt.unaryCode)
				}
				d, err = timed(t, r, testv1.TestServiceCountMethod, &testv1.CountRequest{})
				if d != tt.stream || protows.CodeOf(err) != tt.streamCode {
					t.Errorf("stream ran %v and ended with %v (%v), want %v and %v", d, protows.CodeOf(err), err, tt.stream, tt.streamCode)
				}
			})
		})
	}
}
