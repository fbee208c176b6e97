package wireerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode protowsv1.Code
		wantMsg  string
	}{
		{"context error", fmt.Errorf("ctx: %w", context.DeadlineExceeded), protowsv1.Code_CODE_DEADLINE_EXCEEDED, "ctx: context deadline exceeded"},
		{"typed", protows.Errorf(protows.CodeNotFound, "room %q", "x"), protowsv1.Code_CODE_NOT_FOUND, `room "x"`},
		{"plain", errors.New("boom"), protowsv1.Code_CODE_UNKNOWN, "boom"},
		{"no message", protows.NewError(protows.CodeCanceled, nil), protowsv1.Code_CODE_CANCELED, ""},
		{"invalid UTF-8", protows.Errorf(protows.CodeInternal, "bad \xff byte"), protowsv1.Code_CODE_INTERNAL, "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := wireerr.ToWire(codec.Proto(), tt.err)
			if w.GetCode() != tt.wantCode || w.GetMessage() != tt.wantMsg {
				t.Fatalf("ToWire = %v %q, want %v %q", w.GetCode(), w.GetMessage(), tt.wantCode, tt.wantMsg)
			}
			back := wireerr.FromWire(codec.Proto(), w)
			if back.Code() != protows.Code(tt.wantCode) || back.Message() != tt.wantMsg {
				t.Errorf("FromWire = %v %q", back.Code(), back.Message())
			}
			if (back.Unwrap() == nil) != (tt.wantMsg == "") {
				t.Errorf("FromWire cause = %v, want one exactly when there is a message", back.Unwrap())
			}
		})
	}
}

func TestFromWireWithoutCode(t *testing.T) {
	for _, w := range []*protowsv1.Error{nil, {Message: "no code"}} {
		if c := wireerr.FromWire(codec.JSON(), w).Code(); c != protows.CodeUnknown {
			t.Errorf("FromWire(%v) code = %v, want unknown", w, c)
		}
	}
}

// Details survive the wire in both codecs: each codec holds them in its own
// encoding, and the receiver decodes them into the same messages.
func TestDetailsRoundTrip(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			perr := protows.Errorf(protows.CodeResourceExhausted, "slow down")
			for _, m := range []proto.Message{
				durationpb.New(1500 * time.Millisecond),
				&protowsv1.AuthenticateResponse{Subject: "alice", ExpiresAt: 7},
			} {
				d, err := protows.NewErrorDetail(m)
				if err != nil {
					t.Fatal(err)
				}
				perr.AddDetail(d)
			}
			w := wireerr.ToWire(c, perr)
			if len(w.GetDetails()) != 2 {
				t.Fatalf("ToWire: %d details, want 2", len(w.GetDetails()))
			}
			if !c.Binary() && string(w.GetDetails()[0].GetValue()) != `{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}` {
				t.Errorf("JSON detail = %s", w.GetDetails()[0].GetValue())
			}
			// Through the codec, as a peer receives it.
			frame, err := codec.MarshalFrame(c, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_ERROR, Error: w})
			if err != nil {
				t.Fatal(err)
			}
			envs, err := c.DecodeFrame(frame)
			if err != nil {
				t.Fatal(err)
			}
			back := wireerr.FromWire(c, envs[0].GetError())
			if len(back.Details()) != 2 {
				t.Fatalf("FromWire: %d details, want 2", len(back.Details()))
			}
			v, err := back.Details()[0].Value()
			if err != nil || v.(*durationpb.Duration).AsDuration() != 1500*time.Millisecond {
				t.Errorf("detail 0 = %v, %v", v, err)
			}
			v, err = back.Details()[1].Value()
			if err != nil || v.(*protowsv1.AuthenticateResponse).GetSubject() != "alice" {
				t.Errorf("detail 1 = %v, %v", v, err)
			}
			if back.Details()[1].Type() != "protows.v1.AuthenticateResponse" {
				t.Errorf("Type() = %q", back.Details()[1].Type())
			}
		})
	}
}

// A detail of a type the receiver does not know does not fail the error:
// it is kept as it came, and relayed in the same codec.
func TestUnknownDetail(t *testing.T) {
	const obj = `{"@type":"type.googleapis.com/acme.v1.Quota","limit":5}`
	frame := []byte(`{"id":3,"kind":"error","error":{"code":"resource_exhausted","details":[` + obj + `]}}`)
	envs, err := codec.JSON().DecodeFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	perr := wireerr.FromWire(codec.JSON(), envs[0].GetError())
	if len(perr.Details()) != 1 {
		t.Fatalf("%d details, want 1", len(perr.Details()))
	}
	d := perr.Details()[0]
	if d.Type() != "acme.v1.Quota" || d.Bytes() != nil {
		t.Errorf("Type() = %q, Bytes() = %v", d.Type(), d.Bytes())
	}
	if _, err := d.Value(); err == nil {
		t.Error("Value() of an unknown type succeeded")
	}
	if j, err := d.MarshalJSON(); err != nil || string(j) != obj {
		t.Errorf("MarshalJSON = %s, %v; want the detail as it came", j, err)
	}
	if w := wireerr.ToWire(codec.JSON(), perr); len(w.GetDetails()) != 1 || string(w.GetDetails()[0].GetValue()) != obj {
		t.Errorf("relayed in JSON: %v", w.GetDetails())
	}
	if w := wireerr.ToWire(codec.Proto(), perr); len(w.GetDetails()) != 0 {
		t.Errorf("relayed in Protobuf: %v, want it left out", w.GetDetails())
	}

	// The same in the Protobuf codec: the bytes are kept.
	a := &anypb.Any{TypeUrl: "type.googleapis.com/acme.v1.Quota", Value: []byte{0x08, 0x05}}
	perr = wireerr.FromWire(codec.Proto(), &protowsv1.Error{Code: 8, Details: []*anypb.Any{a}})
	if len(perr.Details()) != 1 || perr.Details()[0].Type() != "acme.v1.Quota" || string(perr.Details()[0].Bytes()) != "\x08\x05" {
		t.Fatalf("details = %v", perr.Details())
	}
	if w := wireerr.ToWire(codec.Proto(), perr); len(w.GetDetails()) != 1 || !proto.Equal(w.GetDetails()[0], a) {
		t.Errorf("relayed in Protobuf: %v", w.GetDetails())
	}
}
