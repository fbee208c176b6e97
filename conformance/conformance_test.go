package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the coverage table of docs/CONFORMANCE.md")

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{`{"id":1}`, `{"id":1,"kind":"pong"}`, true},
		{`{"id":2}`, `{"id":1}`, false},
		{`{"error":null}`, `{"id":1}`, true},
		{`{"error":null}`, `{"error":{"code":"x"}}`, false},
		{`{"payload":{"$exact":{}}}`, `{"payload":{}}`, true},
		{`{"payload":{"$exact":{}}}`, `{"payload":{"a":1}}`, false},
		{`{"code":{"$oneOf":["a","b"]}}`, `{"code":"b"}`, true},
		{`{"code":{"$oneOf":["a","b"]}}`, `{"code":"c"}`, false},
		{`{"m":{"$contains":"ell"}}`, `{"m":"hello"}`, true},
		{`{"m":{"$contains":"x"}}`, `{"m":"hello"}`, false},
		{`{"m":"$any"}`, `{}`, true},
		{`[1,2]`, `[1,2]`, true},
		{`[1,2]`, `[1,2,3]`, false},
		{`{"id":"$a"}`, `{}`, false},
	} {
		vars := map[string]any{}
		err := match(normalizeNumber(decode(t, tc.want)), decode(t, tc.got), vars)
		if (err == nil) != tc.ok {
			t.Errorf("match(%s, %s) = %v, want ok=%v", tc.want, tc.got, err, tc.ok)
		}
	}
	// A variable binds once and must then agree; a failed match binds
	// nothing.
	vars := map[string]any{}
	if err := match(decode(t, `{"id":"$a","kind":"x"}`), decode(t, `{"id":7,"kind":"y"}`), vars); err == nil || len(vars) != 0 {
		t.Fatalf("failed match bound %v (err %v)", vars, err)
	}
	if err := match(decode(t, `{"id":"$a"}`), decode(t, `{"id":7}`), vars); err != nil || vars["a"] != json.Number("7") {
		t.Fatalf("binding: %v, vars %v", err, vars)
	}
	w := substitute(decode(t, `{"id":"$a","n":"$i","p":{"$bytes":3}}`), vars, 4)
	if err := match(normalizeNumber(w), decode(t, `{"id":7,"n":4,"p":"eHh4"}`), vars); err != nil {
		t.Fatal(err)
	}
	if err := match(w, decode(t, `{"id":8,"n":4,"p":"eHh4"}`), vars); err == nil {
		t.Fatal("a bound variable matched another value")
	}
}

// TestFrames checks the runner's own WebSocket framing: lengths of every
// header size, masked and not, through a connection.
func TestFrames(t *testing.T) {
	for _, client := range []bool{true, false} {
		for _, n := range []int{0, 125, 126, 65535, 65536, 200000} {
			payload := bytes.Repeat([]byte{byte(n)}, n)
			a, b := net.Pipe()
			go func(a net.Conn) {
				_, _ = a.Write(appendFrame(nil, frame{fin: true, opcode: opBinary, payload: payload}, client))
				a.Close()
			}(a)
			r := &wsConn{nc: b, br: bufio.NewReader(b), client: !client}
			f, err := r.readFrame()
			if err != nil || !f.fin || f.opcode != opBinary || !bytes.Equal(f.payload, payload) {
				t.Fatalf("client=%v n=%d: %v fin=%v op=%d len=%d", client, n, err, f.fin, f.opcode, len(f.payload))
			}
			// The other side refuses a frame masked the wrong way.
			a, b = net.Pipe()
			go func(a net.Conn) {
				_, _ = a.Write(appendFrame(nil, frame{fin: true, opcode: opBinary, payload: payload}, client))
				a.Close()
			}(a)
			w := &wsConn{nc: b, br: bufio.NewReader(b), client: client}
			if _, err := w.readFrame(); err == nil {
				t.Fatalf("client=%v n=%d: a frame masked the wrong way was read", client, n)
			}
			b.Close()
		}
	}
	data := bytes.Repeat([]byte("compress me "), 1000)
	got, err := inflate(compress(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("deflate round trip: %v", err)
	}
}

// TestSuites checks the cases: they load, every section of PROTOCOL.md has
// one, the pending list names cases, and the guide's coverage table is the
// cases' (go test -update rewrites it).
func TestSuites(t *testing.T) {
	suites, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	protocol, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(Sections(string(protocol))) < 20 {
		t.Fatalf("found only %d sections in PROTOCOL.md", len(Sections(string(protocol))))
	}
	if u := Uncovered(suites, string(protocol)); len(u) > 0 {
		t.Errorf("sections of PROTOCOL.md without a case: %v", u)
	}
	p, err := ReferencePending()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPending(p, suites); err != nil {
		t.Fatal(err)
	}
	modes := map[string]int{}
	for _, s := range suites {
		for _, c := range s.Cases {
			modes[c.Mode]++
		}
	}
	if modes[ModeServer] == 0 || modes[ModeClient] == 0 {
		t.Fatalf("cases per mode: %v", modes)
	}

	const guide = "../docs/CONFORMANCE.md"
	doc, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	table := CoverageTable(suites, string(protocol))
	re := regexp.MustCompile(`(?s)(<!-- coverage:begin -->\n).*?(<!-- coverage:end -->)`)
	if !re.Match(doc) {
		t.Fatalf("%s has no coverage markers", guide)
	}
	want := re.ReplaceAllLiteral(doc, []byte("<!-- coverage:begin -->\n"+table+"<!-- coverage:end -->"))
	if *update {
		if err := os.WriteFile(guide, want, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if !bytes.Equal(doc, want) {
		t.Errorf("the coverage table of %s is stale: run go test ./conformance -run TestSuites -update", guide)
	}
}
