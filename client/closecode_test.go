package client

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/protows/protows"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// actionText describes an action in the close-code table of docs/CLIENTS.md.
var actionText = map[action]string{
	actStop:     "stop",
	actBackoff:  "reconnect with backoff",
	actNow:      "reconnect at once, with jitter (uniform below `Initial`)",
	actSlow:     "reconnect after `Initial` plus the backoff",
	actNewToken: "stop, unless the token source returns a different token: then reconnect with backoff",
	actRefresh:  "get a new token, reconnect at once, with jitter (uniform below `Initial`)",
}

// closeTable renders the client's reaction to close codes and handshake
// statuses as the Markdown tables of docs/CLIENTS.md. The rows of close
// codes are the protocol's (protows.CloseCodes), then one per class of
// codes the protocol does not define.
func closeTable() string {
	var b strings.Builder
	b.WriteString("| close code | meaning | client does | calls then fail with |\n| --- | --- | --- | --- |\n")
	type row struct {
		label, meaning string
		code           protows.CloseCode
	}
	var rows []row
	for _, code := range protows.CloseCodes() {
		rows = append(rows, row{strconv.Itoa(int(code)), code.Meaning(), code})
	}
	rows = append(rows,
		row{"other 4000–4499", "reconnect class", 4100},
		row{"other 4500–4999", "stop class", 4600},
		row{"anything else", "other codes", 3000},
	)
	for _, row := range rows {
		act, code := classifyClose(row.code)
		fail := "—"
		if act == actStop || act == actNewToken {
			fail = "`" + code.String() + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.label, row.meaning, actionText[act], fail)
	}
	b.WriteString("\n| refused handshake | client does | Dial returns |\n| --- | --- | --- |\n")
	for _, row := range []struct {
		label  string
		status int
	}{
		{"HTTP 400 (no common subprotocol, token in URL)", 400},
		{"HTTP 401 (invalid token)", 401},
		{"HTTP 403 (Origin not allowed)", 403},
		{"HTTP 503 (connection limit; `Retry-After` is honoured)", 503},
		{"network error, other status", 502},
	} {
		act, code := classifyHandshake(row.status)
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", row.label, actionText[act], code)
	}
	return b.String()
}

// TestCloseCodeTable keeps the close-code table of docs/CLIENTS.md equal to
// what the client does: the table is rendered from classifyClose, compared
// with testdata/close_codes.golden (go test -update rewrites it), and must
// appear verbatim in the docs.
func TestCloseCodeTable(t *testing.T) {
	t.Parallel()
	got := closeTable()
	golden := "testdata/close_codes.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("close-code table changed (go test -update to accept):\n%s", got)
	}
	docs, err := os.ReadFile("../docs/CLIENTS.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(docs, want) {
		t.Errorf("docs/CLIENTS.md does not contain the table of %s", golden)
	}
}

func TestClassifyCloseRanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code protows.CloseCode
		want action
	}{
		{4000, actBackoff}, {4499, actBackoff}, {4500, actStop}, {4999, actStop},
		{1001, actNow}, {1013, actSlow}, {4029, actSlow}, {4009, actRefresh},
		{4501, actNewToken}, {1006, actBackoff}, {1005, actBackoff}, {2999, actBackoff}, {5000, actBackoff},
	}
	for _, tt := range tests {
		if got, _ := classifyClose(tt.code); got != tt.want {
			t.Errorf("classifyClose(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}
