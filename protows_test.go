package protows_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

func TestCodeMatchesWireEnum(t *testing.T) {
	// Every wire code has a Code with the same number and a name derived
	// from the enum value name.
	for n, name := range protowsv1.Code_name {
		if n == 0 {
			continue
		}
		c := protows.Code(n)
		want := name[len("CODE_"):]
		got, err := c.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != toLower(want) {
			t.Errorf("Code(%d) = %q, want %q", n, got, toLower(want))
		}
		var back protows.Code
		if err := back.UnmarshalText(got); err != nil || back != c {
			t.Errorf("UnmarshalText(%q) = %v, %v", got, back, err)
		}
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestCodeText(t *testing.T) {
	tests := []struct {
		text string
		code protows.Code
		ok   bool
	}{
		{"not_found", protows.CodeNotFound, true},
		{"code_99", 99, true},
		{"code_0", 0, false},
		{"code_x", 0, false},
		{"NOT_FOUND", 0, false},
		{"ok", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		var c protows.Code
		err := c.UnmarshalText([]byte(tt.text))
		if (err == nil) != tt.ok || c != tt.code {
			t.Errorf("UnmarshalText(%q) = %v, %v", tt.text, c, err)
		}
	}
	if s := protows.Code(99).String(); s != "code_99" {
		t.Errorf("String() of an unknown code = %q", s)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want protows.Code
	}{
		{protows.Errorf(protows.CodeNotFound, "x"), protows.CodeNotFound},
		{fmt.Errorf("wrapped: %w", protows.NewError(protows.CodeAborted, io.EOF)), protows.CodeAborted},
		{context.Canceled, protows.CodeCanceled},
		{fmt.Errorf("op: %w", context.DeadlineExceeded), protows.CodeDeadlineExceeded},
		{io.EOF, protows.CodeUnknown},
		{nil, protows.CodeOK},
	}
	for _, tt := range tests {
		if got := protows.CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A logging interceptor writes CodeOf(err) for every call: a success reads
// as "ok", and no error ever carries CodeOK.
func TestCodeOK(t *testing.T) {
	if s := protows.CodeOf(nil).String(); s != "ok" {
		t.Errorf("CodeOf(nil).String() = %q, want ok", s)
	}
	if got := protows.NewError(protows.CodeOK, io.EOF).Code(); got != protows.CodeUnknown {
		t.Errorf("NewError(CodeOK).Code() = %v, want unknown", got)
	}
	if got := protows.Errorf(protows.CodeOK, "x").Code(); got != protows.CodeUnknown {
		t.Errorf("Errorf(CodeOK).Code() = %v, want unknown", got)
	}
	if got := protows.AsError(nil).Code(); got != protows.CodeUnknown {
		t.Errorf("AsError(nil).Code() = %v, want unknown", got)
	}
	// The wire's text form reads error codes: "ok" is none.
	var c protows.Code
	if err := c.UnmarshalText([]byte("ok")); err == nil {
		t.Errorf("UnmarshalText(ok) = %v, want an error", c)
	}
}

func TestErrorWraps(t *testing.T) {
	err := protows.Errorf(protows.CodeInternal, "saving: %w", io.ErrUnexpectedEOF)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not find the cause")
	}
	if err.Message() != "saving: unexpected EOF" {
		t.Errorf("Message() = %q", err.Message())
	}
	if err.Error() != "protows: internal: saving: unexpected EOF" {
		t.Errorf("Error() = %q", err.Error())
	}
	if s := protows.NewError(protows.CodeCanceled, nil).Error(); s != "protows: canceled" {
		t.Errorf("Error() without a cause = %q", s)
	}
}

func TestErrorWithMethod(t *testing.T) {
	err := protows.Errorf(protows.CodeUnimplemented, "unknown method with id 0xd2600009: %w", io.EOF)
	named := err.WithMethod("/chat.v1.ChatService/Sned")
	if got, want := named.Error(), "protows: unimplemented: /chat.v1.ChatService/Sned: unknown method with id 0xd2600009: EOF"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if named.Method() != "/chat.v1.ChatService/Sned" || named.Code() != err.Code() || named.Message() != err.Message() || !errors.Is(named, io.EOF) {
		t.Errorf("WithMethod changed more than the method: %q %v %q", named.Method(), named.Code(), named.Message())
	}
	if err.Method() != "" || err.Error() != "protows: unimplemented: unknown method with id 0xd2600009: EOF" {
		t.Errorf("WithMethod changed the original: %v", err)
	}
	if got := protows.NewError(protows.CodeCanceled, nil).WithMethod("/S/M").Error(); got != "protows: canceled: /S/M" {
		t.Errorf("Error() without a message = %q", got)
	}
	// A message that names the method already is not prefixed again.
	if got := protows.Errorf(protows.CodeUnimplemented, "unknown method /S/M").WithMethod("/S/M").Error(); got != "protows: unimplemented: unknown method /S/M" {
		t.Errorf("Error() of a message naming the method = %q", got)
	}
}

func TestMethodID(t *testing.T) {
	// Published FNV-1a 32 test values, and the ids the golden vectors use.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0x811c9dc5},
		{"a", 0xe40c292c},
		{"foobar", 0xbf9cf968},
	}
	for _, tt := range tests {
		if got := protows.MethodID(tt.in); got != tt.want {
			t.Errorf("MethodID(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

func TestValidMethodName(t *testing.T) {
	for name, want := range map[string]bool{
		"/chat.v1.ChatService/Send": true,
		"/S/M":                      true,
		"chat.v1.ChatService/Send":  false,
		"/chat.v1.ChatService/":     false,
		"//Send":                    false,
		"/a/b/c":                    false,
		"":                          false,
	} {
		if got := protows.ValidMethodName(name); got != want {
			t.Errorf("ValidMethodName(%q) = %v", name, got)
		}
	}
}

func ExampleCodeOf() {
	err := fmt.Errorf("loading room: %w", protows.Errorf(protows.CodeNotFound, "no room %q", "lobby"))
	fmt.Println(protows.CodeOf(err))
	var perr *protows.Error
	if errors.As(err, &perr) {
		fmt.Println(perr.Message())
	}
	// Output:
	// not_found
	// no room "lobby"
}

func ExampleMethodID() {
	fmt.Printf("%#08x\n", protows.MethodID("/chat.v1.ChatService/Send"))
	// Output: 0xa462e88b
}
