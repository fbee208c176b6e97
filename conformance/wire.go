package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	_ "github.com/protows/protows/gen/go/protows/reflection/v1" // registers ReflectionService
	_ "github.com/protows/protows/gen/go/protows/test/v1"       // registers TestService
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// Codecs are the codecs a case runs in, by their short names.
var Codecs = map[string]codec.Codec{"proto": codec.Proto(), "json": codec.JSON()}

// CodecNames are the short names of the codecs, in run order.
var CodecNames = []string{"proto", "json"}

// method is a method the runner knows the messages of.
type method struct {
	name      string // "/pkg.Service/Method"
	in, out   protoreflect.MessageType
	streaming bool
}

// methods are the methods of every service linked into the runner: the
// test service, protows.v1.AuthService and the reflection service.
var methods, methodsByID = func() (map[string]*method, map[uint32]*method) {
	byName := map[string]*method{}
	byID := map[uint32]*method{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := range svcs.Len() {
			sd := svcs.Get(i)
			ms := sd.Methods()
			for j := range ms.Len() {
				md := ms.Get(j)
				in, err1 := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
				out, err2 := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
				if err1 != nil || err2 != nil {
					continue
				}
				m := &method{name: "/" + string(sd.FullName()) + "/" + string(md.Name()), in: in, out: out, streaming: md.IsStreamingServer()}
				byName[m.name] = m
				byID[protows.MethodID(m.name)] = m
			}
		}
		return true
	})
	return byName, byID
}()

// kindNumbers maps the JSON names of kinds to their numbers.
var kindNumbers = map[string]protowsv1.Kind{
	"request": 1, "reply": 2, "stream_message": 3, "stream_end": 4,
	"cancel": 5, "error": 6, "ping": 7, "pong": 8, "credit": 9, "stream_position": 16,
}

func kindName(k protowsv1.Kind) string {
	for n, v := range kindNumbers {
		if v == k {
			return n
		}
	}
	return strconv.Itoa(int(k))
}

// envelopeKeys are the keys of an envelope in a case; "type" (the payload's
// message type) and "methodForm" ("id", "name", "both": how a REQUEST names
// its method; default: as the codec's clients do) are the case's own.
var envelopeKeys = []string{"id", "kind", "method", "methodId", "payload", "payloadHex", "error", "metadata", "seq", "credit", "idempotencyKey", "timeoutMs", "resume", "position", "type", "methodForm"}

// buildEnvelope turns a case envelope (already substituted) into an
// Envelope of codec c. calls records the method of each REQUEST's id.
func buildEnvelope(m map[string]any, c codec.Codec, calls map[uint32]string) (*protowsv1.Envelope, error) {
	for k := range m {
		if !slices.Contains(envelopeKeys, k) {
			return nil, fmt.Errorf("unknown envelope key %q", k)
		}
	}
	e := &protowsv1.Envelope{}
	var err error
	if v, ok := m["id"]; ok {
		if e.Id, err = toUint32(v); err != nil {
			return nil, fmt.Errorf("id: %w", err)
		}
	}
	switch k := m["kind"].(type) {
	case nil:
	case string:
		n, ok := kindNumbers[k]
		if !ok {
			return nil, fmt.Errorf("unknown kind %q", k)
		}
		e.Kind = n
	default:
		n, err := toUint32(k)
		if err != nil {
			return nil, fmt.Errorf("kind: %w", err)
		}
		e.Kind = protowsv1.Kind(n)
	}
	var meth *method
	if v, ok := m["method"].(string); ok {
		meth = methods[v]
		form := "name"
		if c.Binary() {
			form = "id"
		}
		if f, ok := m["methodForm"].(string); ok {
			form = f
		}
		switch form {
		case "name":
			e.Method = v
		case "id":
			e.MethodId = protows.MethodID(v)
		case "both":
			e.Method, e.MethodId = v, protows.MethodID(v)
		default:
			return nil, fmt.Errorf("methodForm %q", form)
		}
	}
	if v, ok := m["methodId"]; ok {
		if e.MethodId, err = toUint32(v); err != nil {
			return nil, fmt.Errorf("methodId: %w", err)
		}
		if meth == nil {
			meth = methodsByID[e.MethodId]
		}
	}
	if e.Kind == protowsv1.Kind_KIND_REQUEST && meth != nil && calls != nil {
		calls[e.Id] = meth.name
	}
	if p, ok := m["payload"]; ok {
		var mt protoreflect.MessageType
		switch {
		case m["type"] != nil:
			name, _ := m["type"].(string)
			if mt, err = protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err != nil {
				return nil, fmt.Errorf("type %q: %w", name, err)
			}
		case e.Kind == protowsv1.Kind_KIND_REQUEST && meth != nil:
			mt = meth.in
		case calls != nil && methods[calls[e.Id]] != nil:
			mt = methods[calls[e.Id]].out
		}
		if e.Payload, err = encodePayload(p, mt, c); err != nil {
			return nil, err
		}
	}
	if h, ok := m["payloadHex"].(string); ok {
		if e.Payload, err = hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("payloadHex: %w", err)
		}
	}
	if v, ok := m["error"].(map[string]any); ok {
		e.Error = &protowsv1.Error{}
		switch code := v["code"].(type) {
		case string:
			var cd protows.Code
			if err := cd.UnmarshalText([]byte(code)); err != nil {
				return nil, err
			}
			e.Error.Code = protowsv1.Code(cd)
		case nil:
		default:
			n, err := toUint32(code)
			if err != nil {
				return nil, fmt.Errorf("error code: %w", err)
			}
			e.Error.Code = protowsv1.Code(n)
		}
		e.Error.Message, _ = v["message"].(string)
		if ds, ok := v["details"].([]any); ok {
			for i, d := range ds {
				a, err := encodeDetail(d, c)
				if err != nil {
					return nil, fmt.Errorf("error detail %d: %w", i, err)
				}
				e.Error.Details = append(e.Error.Details, a)
			}
		}
	}
	if v, ok := m["metadata"].(map[string]any); ok {
		e.Metadata = map[string]string{}
		for k, s := range v {
			e.Metadata[k] = fmt.Sprint(s)
		}
	}
	if v, ok := m["seq"]; ok {
		n, err := toFloat(v)
		if err != nil {
			return nil, fmt.Errorf("seq: %w", err)
		}
		e.Seq = uint64(n)
	}
	if v, ok := m["credit"]; ok {
		if e.Credit, err = toUint32(v); err != nil {
			return nil, fmt.Errorf("credit: %w", err)
		}
	}
	if v, ok := m["idempotencyKey"]; ok {
		if e.IdempotencyKey, ok = v.(string); !ok {
			return nil, fmt.Errorf("idempotencyKey: not a string")
		}
	}
	if v, ok := m["timeoutMs"]; ok {
		if e.TimeoutMs, err = toUint32(v); err != nil {
			return nil, fmt.Errorf("timeoutMs: %w", err)
		}
	}
	if v, ok := m["resume"].(map[string]any); ok {
		e.Resume = &protowsv1.Resume{}
		e.Resume.Epoch, _ = v["epoch"].(string)
		if o, ok := v["offset"]; ok {
			n, err := toFloat(o)
			if err != nil {
				return nil, fmt.Errorf("resume offset: %w", err)
			}
			e.Resume.Offset = uint64(n)
		}
		if h, ok := v["history"]; ok {
			if e.Resume.History, err = toUint32(h); err != nil {
				return nil, fmt.Errorf("resume history: %w", err)
			}
		}
	}
	if v, ok := m["position"].(map[string]any); ok {
		e.Position = &protowsv1.Position{}
		e.Position.Epoch, _ = v["epoch"].(string)
		for key, dst := range map[string]*uint64{"offset": &e.Position.Offset, "latest": &e.Position.Latest} {
			if o, ok := v[key]; ok {
				n, err := toFloat(o)
				if err != nil {
					return nil, fmt.Errorf("position %s: %w", key, err)
				}
				*dst = uint64(n)
			}
		}
		switch r := v["recovery"].(type) {
		case nil:
		case string:
			if r == "" {
				break
			}
			n, ok := protowsv1.Recovery_value["RECOVERY_"+strings.ToUpper(r)]
			if !ok {
				return nil, fmt.Errorf("unknown recovery %q", r)
			}
			e.Position.Recovery = protowsv1.Recovery(n)
		default:
			// A number, for an outcome a later version may add: the
			// JSON codec writes one without a name as "unknown".
			n, err := toFloat(r)
			if err != nil {
				return nil, fmt.Errorf("position recovery: %w", err)
			}
			e.Position.Recovery = protowsv1.Recovery(int32(n))
		}
	}
	return e, nil
}

// encodeDetail encodes a case's error detail, the protojson form of a
// google.protobuf.Any, in codec c (docs/PROTOCOL.md, section 8.1): an Any
// of Protobuf bytes, or an Any whose value is the object itself.
func encodeDetail(d any, c codec.Codec) (*anypb.Any, error) {
	js, err := marshalJSON(d)
	if err != nil {
		return nil, err
	}
	if !c.Binary() {
		obj, _ := d.(map[string]any)
		url, _ := obj["@type"].(string)
		return &anypb.Any{TypeUrl: url, Value: js}, nil
	}
	a := &anypb.Any{}
	if err := protojson.Unmarshal(js, a); err != nil {
		return nil, err
	}
	return a, nil
}

// detailForm is the case form of a received error detail: its protojson
// object, or {"@type": ..., "$hex": ...} for a Protobuf detail of a type
// the runner does not know.
func detailForm(a *anypb.Any, c codec.Codec) any {
	var js []byte
	if c.Binary() {
		b, err := protojson.Marshal(a)
		if err != nil {
			return map[string]any{"@type": a.GetTypeUrl(), "$hex": hex.EncodeToString(a.GetValue())}
		}
		js = b
	} else {
		js = a.GetValue()
	}
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		return map[string]any{"@type": a.GetTypeUrl(), "$hex": hex.EncodeToString(a.GetValue())}
	}
	return v
}

// recoveryName is the JSON name of a recovery outcome (PROTOCOL.md section
// 5): the enum name without RECOVERY_, lower case.
func recoveryName(r protowsv1.Recovery) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "RECOVERY_"))
}

// encodePayload encodes a case payload (a JSON value) in codec c. The JSON
// codec writes it as the case wrote it (compact), so that a case can send
// unknown fields; the Protobuf codec needs its message type.
func encodePayload(p any, mt protoreflect.MessageType, c codec.Codec) ([]byte, error) {
	js, err := marshalJSON(p)
	if err != nil {
		return nil, err
	}
	if !c.Binary() {
		return js, nil
	}
	if mt == nil {
		return nil, fmt.Errorf("the payload's message type is unknown: give \"type\" or payloadHex")
	}
	msg := mt.New().Interface()
	if err := protojson.Unmarshal(js, msg); err != nil {
		return nil, fmt.Errorf("payload %s as %s: %w", js, mt.Descriptor().FullName(), err)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(msg)
}

// marshalJSON writes v compactly, without HTML escaping, as JSON.stringify.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// envelopeForm is the case (JSON) form of a received envelope, for
// matching and for the report. A payload whose type is unknown, or that
// does not decode, is {"$hex": "..."}.
func envelopeForm(e *protowsv1.Envelope, c codec.Codec, calls map[uint32]string) map[string]any {
	m := map[string]any{"kind": kindName(e.GetKind())}
	if e.GetId() != 0 {
		m["id"] = float64(e.GetId())
	}
	if e.GetMethod() != "" {
		m["method"] = e.GetMethod()
	}
	switch {
	case e.GetMethod() != "" && e.GetMethodId() != 0:
		m["methodForm"] = "both"
	case e.GetMethod() != "":
		m["methodForm"] = "name"
	case e.GetMethodId() != 0:
		m["methodForm"] = "id"
	}
	if e.GetMethodId() != 0 {
		m["methodId"] = float64(e.GetMethodId())
		if _, ok := m["method"]; !ok {
			if mm := methodsByID[e.GetMethodId()]; mm != nil {
				m["method"] = mm.name
			}
		}
	}
	var mt protoreflect.MessageType
	if e.GetKind() == protowsv1.Kind_KIND_REQUEST {
		name, _ := m["method"].(string)
		if mm := methods[name]; mm != nil {
			mt = mm.in
			if calls != nil {
				calls[e.GetId()] = name
			}
		}
	} else if calls != nil && methods[calls[e.GetId()]] != nil {
		mt = methods[calls[e.GetId()]].out
	}
	if e.Payload != nil || e.GetKind() == protowsv1.Kind_KIND_REPLY || e.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE {
		m["payload"] = payloadForm(e.GetPayload(), mt, c)
	}
	if w := e.GetError(); w != nil {
		em := map[string]any{"code": protows.Code(w.GetCode()).String(), "message": w.GetMessage()}
		if len(w.GetDetails()) > 0 {
			ds := make([]any, len(w.GetDetails()))
			for i, a := range w.GetDetails() {
				ds[i] = detailForm(a, c)
			}
			em["details"] = ds
		}
		m["error"] = em
	}
	if k := e.GetIdempotencyKey(); k != "" {
		m["idempotencyKey"] = k
	}
	if t := e.GetTimeoutMs(); t != 0 {
		m["timeoutMs"] = float64(t)
	}
	if len(e.GetMetadata()) > 0 {
		md := map[string]any{}
		for k, v := range e.GetMetadata() {
			md[k] = v
		}
		m["metadata"] = md
	}
	if e.GetSeq() != 0 {
		m["seq"] = float64(e.GetSeq())
	}
	if e.GetCredit() != 0 {
		m["credit"] = float64(e.GetCredit())
	}
	if r := e.GetResume(); r != nil {
		rm := map[string]any{}
		if r.GetEpoch() != "" {
			rm["epoch"] = r.GetEpoch()
		}
		if r.GetOffset() != 0 {
			rm["offset"] = float64(r.GetOffset())
		}
		if r.GetHistory() != 0 {
			rm["history"] = float64(r.GetHistory())
		}
		m["resume"] = rm
	}
	if p := e.GetPosition(); p != nil {
		pm := map[string]any{}
		if p.GetEpoch() != "" {
			pm["epoch"] = p.GetEpoch()
		}
		if p.GetOffset() != 0 {
			pm["offset"] = float64(p.GetOffset())
		}
		if p.GetRecovery() != protowsv1.Recovery_RECOVERY_UNSPECIFIED {
			pm["recovery"] = recoveryName(p.GetRecovery())
		}
		if p.GetLatest() != 0 {
			pm["latest"] = float64(p.GetLatest())
		}
		m["position"] = pm
	}
	return m
}

func payloadForm(p []byte, mt protoreflect.MessageType, c codec.Codec) any {
	if mt != nil {
		msg := mt.New().Interface()
		if err := c.UnmarshalPayload(p, msg); err == nil {
			js, err := protojson.Marshal(msg)
			if err == nil {
				var v any
				if json.Unmarshal(js, &v) == nil {
					return v
				}
			}
		}
	}
	if !c.Binary() && json.Valid(p) {
		var v any
		_ = json.Unmarshal(p, &v)
		return v
	}
	return map[string]any{"$hex": hex.EncodeToString(p)}
}

func toUint32(v any) (uint32, error) {
	f, err := toFloat(v)
	if err != nil {
		return 0, err
	}
	if f < 0 || f > math.MaxUint32 || f != math.Trunc(f) {
		return 0, fmt.Errorf("%v is not a uint32", v)
	}
	return uint32(f), nil
}

func toFloat(v any) (float64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Float64()
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	}
	return 0, fmt.Errorf("%v (%T) is not a number", v, v)
}

// substitute returns a copy of v with variables replaced: a string "$name"
// becomes the value of name when it is bound (an unbound name stays, for a
// matcher to bind), "$i" becomes i when i > 0, and {"$bytes": N} becomes
// the base64 of N bytes ("x").
func substitute(v any, vars map[string]any, i int) any {
	switch t := v.(type) {
	case string:
		if t == "$i" && i > 0 {
			return float64(i)
		}
		if strings.HasPrefix(t, "$") {
			if b, ok := vars[t[1:]]; ok {
				return b
			}
		}
		return t
	case []any:
		out := make([]any, len(t))
		for k, e := range t {
			out[k] = substitute(e, vars, i)
		}
		return out
	case map[string]any:
		if n, ok := t["$bytes"]; ok && len(t) == 1 {
			f, _ := toFloat(n)
			return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), int(f)))
		}
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = substitute(e, vars, i)
		}
		return out
	}
	return v
}

func substituteMap(m map[string]any, vars map[string]any, i int) map[string]any {
	out, _ := substitute(maps.Clone(m), vars, i).(map[string]any)
	return out
}
