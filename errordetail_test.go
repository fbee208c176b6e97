package protows_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/protows/protows"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestErrorDetailJSON(t *testing.T) {
	tests := []struct {
		name     string
		json     string
		wantType string
		known    bool
		wantErr  bool
	}{
		{"known", `{"@type":"type.googleapis.com/protows.v1.AuthenticateResponse","subject":"bob"}`, "protows.v1.AuthenticateResponse", true, false},
		{"well-known", `{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}`, "google.protobuf.Duration", true, false},
		{"unknown field ignored", `{"@type":"type.googleapis.com/protows.v1.AuthenticateResponse","nope":1}`, "protows.v1.AuthenticateResponse", true, false},
		{"unknown type kept", `{"@type":"type.googleapis.com/acme.v1.Quota","limit":5}`, "acme.v1.Quota", false, false},
		{"bad fields of a known type kept", `{"@type":"type.googleapis.com/google.protobuf.Duration","value":true}`, "google.protobuf.Duration", false, false},
		{"no @type", `{"limit":5}`, "", false, true},
		{"not an object", `[1]`, "", false, true},
		{"not JSON", `{`, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d protows.ErrorDetail
			err := d.UnmarshalJSON([]byte(tt.json))
			if (err != nil) != tt.wantErr {
				t.Fatalf("UnmarshalJSON error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if d.Type() != tt.wantType {
				t.Errorf("Type() = %q, want %q", d.Type(), tt.wantType)
			}
			if _, verr := d.Value(); (verr == nil) != tt.known {
				t.Errorf("Value() error = %v, want a value: %v", verr, tt.known)
			}
			if !tt.known && d.Bytes() != nil {
				t.Errorf("Bytes() = %v for a detail that did not decode", d.Bytes())
			}
			if !tt.known {
				if j, _ := d.MarshalJSON(); string(j) != tt.json {
					t.Errorf("MarshalJSON = %s, want the detail as it came", j)
				}
			}
		})
	}
}

func TestNewErrorDetail(t *testing.T) {
	d, err := protows.NewErrorDetail(durationpb.New(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(durationpb.New(3 * time.Second))
	if d.Type() != "google.protobuf.Duration" || string(d.Bytes()) != string(want) {
		t.Errorf("Type() = %q, Bytes() = %x", d.Type(), d.Bytes())
	}
	// An Any is taken as it is, even of a type this program does not know.
	a := &anypb.Any{TypeUrl: "example.com/acme.v1.Quota", Value: []byte{1}}
	d, err = protows.NewErrorDetail(a)
	if err != nil || d.Type() != "acme.v1.Quota" || string(d.Bytes()) != "\x01" {
		t.Fatalf("NewErrorDetail(Any) = %v, %v", d, err)
	}
	if _, err := d.Value(); err == nil {
		t.Error("Value() of an unknown type succeeded")
	}
	perr := protows.Errorf(protows.CodeAborted, "conflict")
	if len(perr.Details()) != 0 {
		t.Fatal("a new error has details")
	}
	perr.AddDetail(d)
	if len(perr.Details()) != 1 || perr.Details()[0] != d {
		t.Errorf("Details() = %v", perr.Details())
	}
}

func ExampleError_AddDetail() {
	// A handler says when to try again.
	err := protows.Errorf(protows.CodeResourceExhausted, "quota exceeded")
	if d, derr := protows.NewErrorDetail(durationpb.New(30 * time.Second)); derr == nil {
		err.AddDetail(d)
	}

	// A client reads the details it knows.
	for _, d := range err.Details() {
		v, verr := d.Value()
		if verr != nil {
			continue // a type this program does not know
		}
		if delay, ok := v.(*durationpb.Duration); ok {
			fmt.Println("retry after", delay.AsDuration())
		}
	}
	// Output: retry after 30s
}

// FuzzErrorDetailJSON: any input either fails to decode or gives a detail
// with a type whose JSON form decodes again to the same type.
func FuzzErrorDetailJSON(f *testing.F) {
	for _, s := range []string{
		`{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}`,
		`{"@type":"type.googleapis.com/acme.v1.Quota","limit":5}`,
		`{"@type":"type.googleapis.com/protows.v1.AuthenticateResponse","subject":"é","expiresAt":"7"}`,
		`{"@type":""}`, `[]`, `null`, `{"@type":5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d protows.ErrorDetail
		if d.UnmarshalJSON(b) != nil {
			return
		}
		j, err := d.MarshalJSON()
		if err != nil {
			t.Fatalf("decoded %q but MarshalJSON fails: %v", b, err)
		}
		var again protows.ErrorDetail
		if err := again.UnmarshalJSON(j); err != nil || again.Type() != d.Type() {
			t.Fatalf("%q: re-encoded %q decodes to %q, %v", b, j, again.Type(), err)
		}
	})
}
