package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// checkFailDetails checks the details testservice.Fail attaches.
func checkFailDetails(t *testing.T, err error, req *testv1.FailRequest) {
	t.Helper()
	var perr *protows.Error
	if !errors.As(err, &perr) || len(perr.Details()) != 2 {
		t.Fatalf("error %v: want a *protows.Error with 2 details", err)
	}
	v0, err0 := perr.Details()[0].Value()
	v1, err1 := perr.Details()[1].Value()
	if err0 != nil || err1 != nil {
		t.Fatalf("details do not decode: %v, %v", err0, err1)
	}
	if d, ok := v0.(*durationpb.Duration); !ok || d.AsDuration() != 1500*time.Millisecond {
		t.Errorf("detail 0 = %v", v0)
	}
	if !proto.Equal(v1, req) {
		t.Errorf("detail 1 = %v, want %v", v1, req)
	}
}

// TestErrorDetails: a handler's error details reach the Go client in both
// codecs.
func TestErrorDetails(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startOnce(t, transport.Config{}, nil)
		c := dial(t, srv.url, client.WithCodec(cd))
		req := &testv1.FailRequest{Code: uint32(protows.CodeResourceExhausted), Message: "quota", Details: true}
		_, err := client.CallUnary[testv1.FailResponse](testCtx(t), c, failMethod, req)
		if protows.CodeOf(err) != protows.CodeResourceExhausted {
			t.Fatalf("err = %v", err)
		}
		checkFailDetails(t, err, req)
	})
}

// TestOutcomeAcrossCodecs: a key's outcome kept from a call in one codec
// answers a send in the other, reply or error (details included).
func TestOutcomeAcrossCodecs(t *testing.T) {
	srv := startOnce(t, transport.Config{}, nil)
	j := dial(t, srv.url, client.WithCodec(codec.JSON()))
	p := dial(t, srv.url, client.WithCodec(codec.Proto()))
	key := client.WithIdempotencyKey("cross-1")
	first, err := echoOnce(testCtx(t), j, "cross", key)
	if err != nil {
		t.Fatal(err)
	}
	second, err := echoOnce(testCtx(t), p, "cross", key)
	if err != nil || second != first || first != "cross#1" {
		t.Errorf("JSON then Protobuf: %q, then %q, %v; want the same reply", first, second, err)
	}

	req := &testv1.FailRequest{Code: uint32(protows.CodeAborted), Message: "no", Details: true}
	fkey := client.WithIdempotencyKey("cross-2")
	_, err = client.CallUnary[testv1.FailResponse](testCtx(t), p, failMethod, req, fkey)
	checkFailDetails(t, err, req)
	_, err = client.CallUnary[testv1.FailResponse](testCtx(t), j, failMethod, req, fkey)
	checkFailDetails(t, err, req)
	// The server answered two calls with one run of the handler (it
	// records a call just after it answered it).
	srv.metrics.waitFor(t, "two calls of Fail", func() bool { return len(srv.metrics.outcomesOf(failMethod)) >= 2 })
	if got := srv.metrics.outcomesOf(failMethod); len(got) != 2 || got[0] != "aborted" || got[1] != "aborted" || srv.runsOf("fail:no") != 1 {
		t.Errorf("outcomes %v, %d runs; want two aborted and one run", got, srv.runsOf("fail:no"))
	}
}
