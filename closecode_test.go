package protows_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/protows/protows"
)

// TestCloseCodesMatchProtocol keeps the close codes equal to the table of
// docs/PROTOCOL.md, section 9: the same codes, none missing on either side.
func TestCloseCodesMatchProtocol(t *testing.T) {
	doc, err := os.ReadFile("docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## 9. Close codes\n")
	if !ok {
		t.Fatal("docs/PROTOCOL.md has no section \"## 9. Close codes\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var documented []protows.CloseCode
	for _, m := range regexp.MustCompile(`(?m)^\| (\d{4}) \|`).FindAllStringSubmatch(section, -1) {
		n, err := strconv.ParseUint(m[1], 10, 16)
		if err != nil {
			t.Fatal(err)
		}
		documented = append(documented, protows.CloseCode(n))
	}
	if got := protows.CloseCodes(); !slices.Equal(got, documented) {
		t.Errorf("CloseCodes() = %v,\nPROTOCOL.md section 9 lists %v", got, documented)
	}
}

func TestCloseCodeNames(t *testing.T) {
	codes := protows.CloseCodes()
	if !slices.IsSorted(codes) {
		t.Errorf("CloseCodes() not in ascending order: %v", codes)
	}
	seen := map[string]protows.CloseCode{}
	for _, c := range codes {
		name := c.String()
		if name == "" || strings.HasPrefix(name, "close_") || strings.ToLower(name) != name || strings.Contains(name, " ") {
			t.Errorf("CloseCode(%d).String() = %q, want a lower snake case name", uint16(c), name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("codes %d and %d are both named %q", uint16(prev), uint16(c), name)
		}
		seen[name] = c
		if c.Meaning() == "" {
			t.Errorf("CloseCode(%d) has no meaning", uint16(c))
		}
	}
	// The codes callers most often log, by name.
	for c, want := range map[protows.CloseCode]string{
		protows.CloseNormal:             "normal",
		protows.CloseSlowConsumer:       "slow_consumer",
		protows.CloseUnsupportedVersion: "unsupported_version",
		4100:                            "close_4100",
		3000:                            "close_3000",
	} {
		if got := c.String(); got != want {
			t.Errorf("CloseCode(%d).String() = %q, want %q", uint16(c), got, want)
		}
	}
	if m := protows.CloseCode(4100).Meaning(); m != "" {
		t.Errorf("an undefined code has the meaning %q", m)
	}
}

func TestCloseCodeReconnect(t *testing.T) {
	tests := []struct {
		code          protows.CloseCode
		reconnect, ok bool
	}{
		{3999, false, false},
		{4000, true, true},
		{protows.CloseSlowConsumer, true, true},
		{4499, true, true},
		{4500, false, true},
		{protows.CloseUnauthenticated, false, true},
		{4999, false, true},
		{5000, false, false},
		{protows.CloseGoingAway, false, false},
	}
	for _, tt := range tests {
		reconnect, ok := tt.code.Reconnect()
		if reconnect != tt.reconnect || ok != tt.ok {
			t.Errorf("CloseCode(%d).Reconnect() = %v, %v, want %v, %v", uint16(tt.code), reconnect, ok, tt.reconnect, tt.ok)
		}
	}
}

func ExampleCloseCode() {
	code := protows.CloseSlowConsumer
	reconnect, _ := code.Reconnect()
	fmt.Println(uint16(code), code, code.Meaning(), reconnect)
	// Output: 4008 slow_consumer slow consumer true
}
