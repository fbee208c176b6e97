package wireerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	protows "github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
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
			w := wireerr.ToWire(tt.err)
			if w.GetCode() != tt.wantCode || w.GetMessage() != tt.wantMsg {
				t.Fatalf("ToWire = %v %q, want %v %q", w.GetCode(), w.GetMessage(), tt.wantCode, tt.wantMsg)
			}
			back := wireerr.FromWire(w)
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
		if c := wireerr.FromWire(w).Code(); c != protows.CodeUnknown {
			t.Errorf("FromWire(%v) code = %v, want unknown", w, c)
		}
	}
}
