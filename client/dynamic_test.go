package client_test

import (
	"errors"
	"testing"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// initAs returns a response initializer that makes the zero
// dynamicpb.Message a message of m's type.
func initAs(m proto.Message) client.CallOption {
	return client.WithResponseInitializer(func(res proto.Message) error {
		*res.(*dynamicpb.Message) = *dynamicpb.NewMessage(m.ProtoReflect().Descriptor())
		return nil
	})
}

// TestResponseInitializer calls with dynamic messages, built from
// descriptors at run time, as the protows command does.
func TestResponseInitializer(t *testing.T) {
	t.Parallel()
	s := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	forCodecs(t, func(t *testing.T, c codec.Codec) {
		cl := dial(t, s.url, client.WithCodec(c))
		req := dynamicpb.NewMessage((&testv1.EchoRequest{}).ProtoReflect().Descriptor())
		req.Set(req.Descriptor().Fields().ByName("text"), protoreflect.ValueOfString("héllo"))
		res, err := client.CallUnary[dynamicpb.Message](testCtx(t), cl, testservice.EchoMethod, req, initAs(&testv1.EchoResponse{}))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Get(res.Descriptor().Fields().ByName("text")).String(); got != "héllo" {
			t.Errorf("reply text %q", got)
		}

		stream, err := client.CallServerStream[dynamicpb.Message](testCtx(t), cl, testservice.CountMethod,
			&testv1.CountRequest{Count: 3}, initAs(&testv1.CountResponse{}))
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for stream.Receive() {
			m := stream.Msg()
			got = append(got, m.Get(m.Descriptor().Fields().ByName("n")).Uint())
		}
		if err := stream.Err(); err != nil || len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Errorf("stream: %v, %v", got, err)
		}
	})
}

func TestResponseInitializerError(t *testing.T) {
	t.Parallel()
	s := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	cl := dial(t, s.url)
	boom := errors.New("boom")
	fail := client.WithResponseInitializer(func(proto.Message) error { return boom })
	_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), cl, testservice.EchoMethod, &testv1.EchoRequest{}, fail)
	if protows.CodeOf(err) != protows.CodeInternal || !errors.Is(err, boom) {
		t.Errorf("unary: %v, want internal wrapping boom", err)
	}
	stream, err := client.CallServerStream[testv1.CountResponse](testCtx(t), cl, testservice.CountMethod, &testv1.CountRequest{Count: 2}, fail)
	if err != nil {
		t.Fatal(err)
	}
	// Count 2 without a pause: the STREAM_END has likely arrived before
	// the first Receive, and the failure still shows in Err.
	if stream.Receive() || stream.Receive() {
		t.Error("Receive succeeded with a failing initializer")
	}
	if err := stream.Err(); protows.CodeOf(err) != protows.CodeInternal || !errors.Is(err, boom) {
		t.Errorf("stream: %v, want internal wrapping boom", err)
	}
}
