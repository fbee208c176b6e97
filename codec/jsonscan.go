package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/types/known/anypb"
)

// The JSON frame decoder is a single pass over the frame, written by hand
// because receivers decode every broadcast they get: encoding/json validated
// the frame, reflected over a struct, and copied each payload into a
// json.RawMessage, and arrays were split into RawMessages first. This
// scanner keeps encoding/json's exact acceptance (the decodeFrameStd
// differential test and fuzz target in jsonscan_test.go hold it to that):
// - the frame must be valid JSON (RFC 8259 as encoding/json reads it:
//   invalid UTF-8 in strings allowed, nesting at most 10,000 deep);
// - object keys match field names case-insensitively (Unicode simple
//   folding), and the last of duplicate keys wins;
// - null leaves a field as it was, except that it clears "error" and
//   "metadata", and a null payload is no payload;
// - a value of the wrong type, a number that does not fit, an unknown kind
//   or a bad code is an error, but a syntax error anywhere takes precedence;
// - "error", "metadata", "resume" and "position" objects given twice are
//   merged.
// Payloads alias the frame, as the Codec contract allows.

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// errJSONSyntax marks a frame that is not valid JSON.
var errJSONSyntax = errors.New("invalid JSON")

type jsonScanner struct {
	src   []byte
	pos   int
	depth int
	// semErr is the first error that is not a syntax error. Scanning goes
	// on after one, as in encoding/json, so that a later syntax error is
	// the one reported.
	semErr error
}

func (s *jsonScanner) syntaxErr(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errJSONSyntax, what, s.pos)
}

func (s *jsonScanner) setSem(err error) {
	if s.semErr == nil {
		s.semErr = err
	}
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

func (s *jsonScanner) push() error {
	s.depth++
	if s.depth > maxJSONDepth {
		return s.syntaxErr("exceeded max depth")
	}
	return nil
}

// skipValue validates the value at pos and moves past it.
func (s *jsonScanner) skipValue() error {
	switch c := s.peek(); {
	case c == '{':
		if err := s.push(); err != nil {
			return err
		}
		s.pos++
		if s.peek() == '}' {
			s.pos++
			s.depth--
			return nil
		}
		for {
			if s.peek() != '"' {
				return s.syntaxErr("want object key")
			}
			if _, _, err := s.skipString(); err != nil {
				return err
			}
			if s.peek() != ':' {
				return s.syntaxErr("want colon")
			}
			s.pos++
			if err := s.skipValue(); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				s.depth--
				return nil
			default:
				return s.syntaxErr("want comma or end of object")
			}
		}
	case c == '[':
		if err := s.push(); err != nil {
			return err
		}
		s.pos++
		if s.peek() == ']' {
			s.pos++
			s.depth--
			return nil
		}
		for {
			if err := s.skipValue(); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				s.depth--
				return nil
			default:
				return s.syntaxErr("want comma or end of array")
			}
		}
	case c == '"':
		_, _, err := s.skipString()
		return err
	case c == '-' || ('0' <= c && c <= '9'):
		return s.skipNumber()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.syntaxErr("want value")
	}
}

func (s *jsonScanner) literal(lit string) error {
	if !bytes.HasPrefix(s.src[s.pos:], []byte(lit)) {
		return s.syntaxErr("bad literal")
	}
	s.pos += len(lit)
	return nil
}

func (s *jsonScanner) digits() int {
	start := s.pos
	for s.pos < len(s.src) && '0' <= s.src[s.pos] && s.src[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}

func (s *jsonScanner) skipNumber() error {
	if s.src[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.src) && s.src[s.pos] == '0':
		s.pos++
	case s.digits() == 0:
		return s.syntaxErr("bad number")
	}
	if s.pos < len(s.src) && s.src[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.syntaxErr("bad number")
		}
	}
	if s.pos < len(s.src) && (s.src[s.pos] == 'e' || s.src[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.src) && (s.src[s.pos] == '+' || s.src[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.syntaxErr("bad number")
		}
	}
	return nil
}

// skipString validates the string at pos (its opening quote) and moves past
// it. It returns the bytes between the quotes, escapes unresolved, and
// whether they are plain: no escape and no byte outside ASCII, so that the
// string is its bytes as they are (str, objectKey) without a second scan.
func (s *jsonScanner) skipString() (raw []byte, plain bool, err error) {
	// The scan works on locals, a table telling the bytes that end it:
	// through s, every byte was a load and a store of s.pos, and the scan
	// of strings the largest part of decoding an envelope
	// (BenchmarkJSONDecodeRequest: plain 788 → 536 ns, keyed 1,085 → 909
	// ns, 2026-12-07). Eight bytes are tested at a time (stringStops),
	// then the rest one by one.
	src, i := s.src, s.pos+1
	start := i
	var high uint64 // the bytes passed over, or-ed: their top bits tell non-ASCII
	escaped := false
	for {
		for i+8 <= len(src) {
			w := binary.LittleEndian.Uint64(src[i:])
			if m := stringStops(w); m != 0 {
				n := bits.TrailingZeros64(m) &^ 7 // bits before the first stop
				high |= w & (1<<n - 1)
				i += n >> 3
				break
			}
			high |= w
			i += 8
		}
		for i < len(src) && plainStringByte[src[i]] {
			high |= uint64(src[i])
			i++
		}
		if i >= len(src) {
			s.pos = i
			return nil, false, s.syntaxErr("unterminated string")
		}
		switch c := src[i]; {
		case c == '"':
			s.pos = i + 1
			return src[start:i], high&(lsb*0x80) == 0 && !escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(src) {
				s.pos = i
				return nil, false, s.syntaxErr("unterminated string")
			}
			switch src[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(src) || !isHex(src[i]) {
						s.pos = i
						return nil, false, s.syntaxErr("bad \\u escape")
					}
					i++
				}
			default:
				s.pos = i
				return nil, false, s.syntaxErr("bad escape")
			}
		default: // c < 0x20
			s.pos = i
			return nil, false, s.syntaxErr("control character in string")
		}
	}
}

// lsb is a 1 in each byte of a word.
const lsb = 0x0101010101010101

// stringStops marks, with its top bit, a byte of w (eight bytes of a
// string, the first in the low byte) that does not stand for itself in a
// JSON string: a quote, a backslash or a control character. Only the
// lowest mark is exact (a borrow may mark bytes above it), which is all
// skipString reads.
func stringStops(w uint64) uint64 {
	const top = lsb * 0x80
	q := w ^ lsb*'"'
	b := w ^ lsb*'\\'
	return ((w-lsb*0x20)&^w | (q-lsb)&^q | (b-lsb)&^b) & top
}

// plainStringByte reports the bytes a JSON string holds as they are: all
// but the quote, the backslash and the control characters.
var plainStringByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str reads a string value as encoding/json does: escapes resolved, invalid
// UTF-8 and lone surrogates replaced with U+FFFD.
func (s *jsonScanner) str() (string, error) {
	raw, plain, err := s.skipString()
	if err != nil {
		return "", err
	}
	if plain {
		return string(raw), nil
	}
	return unquoteJSON(raw), nil
}

// unquoteJSON resolves the body of a valid JSON string, following
// encoding/json's unquoteBytes.
func unquoteJSON(raw []byte) string {
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(raw)
	}
	out := make([]byte, 0, len(raw)+2*utf8.UTFMax)
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			r++
			switch raw[r] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := getu4(raw[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(raw) && raw[r] == '\\' && raw[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, getu4(raw[r+2:])); dec != utf8.RuneError {
							r += 6
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
					rr = utf8.RuneError
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // '"', '\\', '/'
				out = append(out, raw[r])
			}
			r++
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			r += size
			out = utf8.AppendRune(out, rr)
		}
	}
	return string(out)
}

func getu4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// isNull reports whether the value at pos is null, and if so moves past it.
func (s *jsonScanner) isNull() (bool, error) {
	if s.peek() != 'n' {
		return false, nil
	}
	return true, s.literal("null")
}

// typeErr records a value of the wrong type for field and skips it.
func (s *jsonScanner) typeErr(field string) error {
	s.setSem(fmt.Errorf("codec: bad envelope: wrong type for %q", field))
	return s.skipValue()
}

// uint reads an unsigned integer field of the given bit size into *dst;
// null leaves *dst alone.
func (s *jsonScanner) uint(field string, bits int, dst *uint64) error {
	switch c := s.peek(); {
	case c == '-' || ('0' <= c && c <= '9'):
		start := s.pos
		if err := s.skipNumber(); err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(s.src[start:s.pos]), 10, bits)
		if err != nil {
			s.setSem(fmt.Errorf("codec: bad envelope: %q: %w", field, err))
			return nil
		}
		*dst = n
		return nil
	case c == 'n':
		return s.literal("null")
	default:
		return s.typeErr(field)
	}
}

// string reads a string field into *dst; null leaves *dst alone.
func (s *jsonScanner) string(field string, dst *string) error {
	switch s.peek() {
	case '"':
		v, err := s.str()
		*dst = v
		return err
	case 'n':
		return s.literal("null")
	default:
		return s.typeErr(field)
	}
}

// key reads an object key and its colon.
func (s *jsonScanner) key() (objectKey, error) {
	if s.peek() != '"' {
		return objectKey{}, s.syntaxErr("want object key")
	}
	raw, plain, err := s.skipString()
	if err != nil {
		return objectKey{}, err
	}
	if s.peek() != ':' {
		return objectKey{}, s.syntaxErr("want colon")
	}
	s.pos++
	return objectKey{raw: raw, plain: plain}, nil
}

// object calls field for each key of the object at pos (after its opening
// brace); field must consume the value.
func (s *jsonScanner) object(field func(key objectKey) error) error {
	if err := s.push(); err != nil {
		return err
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		if err := field(k); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.syntaxErr("want comma or end of object")
		}
	}
}

// objectKey is the raw key of an object's member, to be matched against
// field names as encoding/json matches them (is). It is scanned once, for
// all the names it is compared with: most keys are plain ASCII, which
// folding keeps to their length, so that a name of another length is
// passed over without reading the key again.
type objectKey struct {
	raw   []byte
	plain bool // no escape, and only ASCII
}

// is reports whether k names field: exactly, or by Unicode simple case
// folding of the unquoted key.
func (k objectKey) is(field string) bool {
	if string(k.raw) == field {
		return true
	}
	// Folding can turn a multi-byte rune into ASCII (KELVIN SIGN is 'k'),
	// so only a plain key can be told apart by its length.
	if k.plain {
		return len(k.raw) == len(field) && bytes.EqualFold(k.raw, []byte(field))
	}
	return bytes.EqualFold([]byte(k.String()), []byte(field))
}

// String returns the key unquoted.
func (k objectKey) String() string {
	if k.plain {
		return string(k.raw)
	}
	return unquoteJSON(k.raw)
}

// The members of an envelope, in the order of envelopeMembers.
const (
	memberID = iota
	memberKind
	memberMethod
	memberMethodID
	memberPayload
	memberError
	memberMetadata
	memberSeq
	memberCredit
	memberIdempotencyKey
	memberTimeoutMs
	memberResume
	memberPosition
)

// envelopeMembers are the names of an envelope's members, by the
// constants above.
var envelopeMembers = [...]string{"id", "kind", "method", "methodId", "payload", "error", "metadata", "seq", "credit", "idempotencyKey", "timeoutMs", "resume", "position"}

// envelopeMember returns which of envelopeMembers k names, or -1. An
// exact name, what encoders write, is found by one switch; only another
// key is compared with each name by folding (objectKey.is), which a
// member late in the list paid for with every name before it.
func envelopeMember(k objectKey) int {
	switch string(k.raw) {
	case "id":
		return memberID
	case "kind":
		return memberKind
	case "method":
		return memberMethod
	case "methodId":
		return memberMethodID
	case "payload":
		return memberPayload
	case "error":
		return memberError
	case "metadata":
		return memberMetadata
	case "seq":
		return memberSeq
	case "credit":
		return memberCredit
	case "idempotencyKey":
		return memberIdempotencyKey
	case "timeoutMs":
		return memberTimeoutMs
	case "resume":
		return memberResume
	case "position":
		return memberPosition
	}
	for i, name := range envelopeMembers {
		if k.is(name) {
			return i
		}
	}
	return -1
}

// envelope decodes the envelope at pos: an object, or null for the empty
// envelope.
func (s *jsonScanner) envelope() (*protowsv1.Envelope, error) {
	e := &protowsv1.Envelope{}
	switch s.peek() {
	case '{':
	case 'n':
		return e, s.literal("null")
	default:
		s.setSem(errors.New("codec: bad envelope: not an object"))
		return e, s.skipValue()
	}
	var (
		id, methodID, seq, credit, timeout uint64
		kind                               string
		payload                            []byte
		hasErr                             bool
		werr                               struct {
			code    protows.Code
			message string
			details []*anypb.Any
		}
		resume   *protowsv1.Resume
		position *protowsv1.Position
		recovery string
	)
	err := s.object(func(k objectKey) error {
		switch envelopeMember(k) {
		case memberID:
			return s.uint("id", 32, &id)
		case memberKind:
			return s.string("kind", &kind)
		case memberMethod:
			return s.string("method", &e.Method)
		case memberMethodID:
			return s.uint("methodId", 32, &methodID)
		case memberPayload:
			if null, err := s.isNull(); null || err != nil {
				payload = nil
				return err
			}
			s.skipSpace()
			start := s.pos
			if err := s.skipValue(); err != nil {
				return err
			}
			payload = s.src[start:s.pos:s.pos]
			return nil
		case memberError:
			switch s.peek() {
			case '{':
			case 'n':
				hasErr = false
				werr.code, werr.message, werr.details = 0, "", nil
				return s.literal("null")
			default:
				return s.typeErr("error")
			}
			hasErr = true
			return s.object(func(k objectKey) error {
				switch {
				case k.is("code"):
					return s.code(&werr.code)
				case k.is("message"):
					return s.string("message", &werr.message)
				case k.is("details"):
					return s.details(&werr.details)
				}
				return s.skipValue()
			})
		case memberMetadata:
			switch s.peek() {
			case '{':
			case 'n':
				e.Metadata = nil
				return s.literal("null")
			default:
				return s.typeErr("metadata")
			}
			if e.Metadata == nil {
				e.Metadata = make(map[string]string)
			}
			return s.object(func(k objectKey) error {
				var v string
				if err := s.string("metadata", &v); err != nil {
					return err
				}
				e.Metadata[k.String()] = v
				return nil
			})
		case memberSeq:
			return s.uint("seq", 64, &seq)
		case memberCredit:
			return s.uint("credit", 32, &credit)
		case memberIdempotencyKey:
			return s.string("idempotencyKey", &e.IdempotencyKey)
		case memberTimeoutMs:
			return s.uint("timeoutMs", 32, &timeout)
		case memberResume:
			switch s.peek() {
			case '{':
			case 'n':
				resume = nil
				return s.literal("null")
			default:
				return s.typeErr("resume")
			}
			if resume == nil {
				resume = &protowsv1.Resume{}
			}
			return s.object(func(k objectKey) error {
				switch {
				case k.is("epoch"):
					return s.string("epoch", &resume.Epoch)
				case k.is("offset"):
					return s.uint("offset", 64, &resume.Offset)
				case k.is("history"):
					n := uint64(resume.History)
					err := s.uint("history", 32, &n)
					resume.History = uint32(n)
					return err
				}
				return s.skipValue()
			})
		case memberPosition:
			switch s.peek() {
			case '{':
			case 'n':
				position, recovery = nil, ""
				return s.literal("null")
			default:
				return s.typeErr("position")
			}
			if position == nil {
				position = &protowsv1.Position{}
			}
			return s.object(func(k objectKey) error {
				switch {
				case k.is("epoch"):
					return s.string("epoch", &position.Epoch)
				case k.is("offset"):
					return s.uint("offset", 64, &position.Offset)
				case k.is("recovery"):
					return s.string("recovery", &recovery)
				case k.is("latest"):
					return s.uint("latest", 64, &position.Latest)
				}
				return s.skipValue()
			})
		}
		return s.skipValue()
	})
	if err != nil {
		return nil, err
	}
	e.Resume = resume
	if position != nil && recovery != "" {
		r, ok := recoveryValues[recovery]
		if !ok {
			r = recoveryUnknown // a newer outcome (recoveryUnknown)
		}
		position.Recovery = r
	}
	e.Position = position
	e.Id, e.MethodId, e.Seq, e.Credit, e.TimeoutMs = uint32(id), uint32(methodID), seq, uint32(credit), uint32(timeout)
	if kind != "" {
		k, ok := kindValues[kind]
		if !ok {
			s.setSem(fmt.Errorf("codec: bad envelope: unknown kind %q", kind))
		}
		e.Kind = k
	}
	e.Payload = payload
	if hasErr {
		e.Error = &protowsv1.Error{Code: protowsv1.Code(werr.code), Message: werr.message, Details: werr.details}
	}
	return e, nil
}

// details reads the "details" of an error: an array of objects, each the
// protojson form of a google.protobuf.Any, or null. Each becomes an Any
// whose type URL is its "@type" and whose value is the object itself,
// aliasing the frame: the codec does not resolve types, so a detail of a
// type the receiver does not know decodes as well as any other. A second
// "details" replaces the first, as encoding/json does with a slice.
func (s *jsonScanner) details(dst *[]*anypb.Any) error {
	switch s.peek() {
	case '[':
	case 'n':
		*dst = nil
		return s.literal("null")
	default:
		return s.typeErr("details")
	}
	if err := s.push(); err != nil {
		return err
	}
	s.pos++
	*dst = nil
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if s.peek() != '{' {
			s.setSem(errors.New("codec: bad envelope: an error detail is not an object"))
			if err := s.skipValue(); err != nil {
				return err
			}
		} else {
			start := s.pos
			var typeURL string
			err := s.object(func(k objectKey) error {
				if k.is("@type") {
					return s.string("@type", &typeURL)
				}
				return s.skipValue()
			})
			if err != nil {
				return err
			}
			if typeURL == "" {
				s.setSem(errors.New("codec: bad envelope: an error detail has no \"@type\""))
			} else {
				*dst = append(*dst, &anypb.Any{TypeUrl: typeURL, Value: s.src[start:s.pos:s.pos]})
			}
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.syntaxErr("want comma or end of array")
		}
	}
}

// code reads an error code: its name as a JSON string (protows.Code's text
// form); null leaves *dst alone.
func (s *jsonScanner) code(dst *protows.Code) error {
	switch s.peek() {
	case '"':
		v, err := s.str()
		if err != nil {
			return err
		}
		if err := dst.UnmarshalText([]byte(v)); err != nil {
			s.setSem(fmt.Errorf("codec: bad envelope: %w", err))
		}
		return nil
	case 'n':
		return s.literal("null")
	default:
		return s.typeErr("code")
	}
}

// end checks that only white space follows the value.
func (s *jsonScanner) end() error {
	if s.peek() != 0 || s.pos < len(s.src) {
		return s.syntaxErr("data after top-level value")
	}
	return nil
}

func decodeJSONFrame(src []byte) ([]*protowsv1.Envelope, error) {
	s := jsonScanner{src: src}
	c := s.peek()
	switch {
	case s.pos == len(src):
		return nil, errEmptyFrame
	case c == '[':
	default:
		e, err := s.envelope()
		if err == nil {
			err = s.end()
		}
		if err != nil {
			return nil, fmt.Errorf("codec: bad frame: %w", err)
		}
		if s.semErr != nil {
			return nil, s.semErr
		}
		return []*protowsv1.Envelope{e}, nil
	}
	if err := s.push(); err != nil {
		return nil, fmt.Errorf("codec: bad frame: %w", err)
	}
	s.pos++
	var (
		envs   []*protowsv1.Envelope
		n      int
		envErr error
	)
	if s.peek() != ']' {
		for {
			// Past the limit, or after a bad envelope, the rest is only
			// checked for syntax: nothing more is allocated.
			if n < MaxEnvelopesPerFrame && envErr == nil {
				e, err := s.envelope()
				if err != nil {
					return nil, fmt.Errorf("codec: bad frame: %w", err)
				}
				if s.semErr != nil {
					envErr = fmt.Errorf("envelope %d: %w", n, s.semErr)
					s.semErr = nil
				}
				envs = append(envs, e)
			} else if err := s.skipValue(); err != nil {
				return nil, fmt.Errorf("codec: bad frame: %w", err)
			}
			n++
			c := s.peek()
			if c == ']' {
				break
			}
			if c != ',' {
				return nil, fmt.Errorf("codec: bad frame: %w", s.syntaxErr("want comma or end of array"))
			}
			s.pos++
		}
	}
	s.pos++
	if err := s.end(); err != nil {
		return nil, fmt.Errorf("codec: bad frame: %w", err)
	}
	switch {
	case n == 0:
		return nil, errEmptyFrame
	case n > MaxEnvelopesPerFrame:
		return nil, fmt.Errorf("%w: %d", ErrTooManyEnvelopes, n)
	case envErr != nil:
		return nil, envErr
	}
	return envs, nil
}
