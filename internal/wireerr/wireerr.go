// Package wireerr converts between protows.Error and its wire form, the
// Error message of an ERROR or STREAM_END envelope. It is internal so that
// the root package, the vocabulary every part shares, does not import the
// generated code of the wire protocol.
package wireerr

import (
	"strings"
	"unicode/utf8"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeURLPrefix is the prefix of the type URLs written for details.
const typeURLPrefix = "type.googleapis.com/"

// ToWire returns the wire form of err (see protows.AsError) for a
// connection of codec c. The message is made valid UTF-8, which both codecs
// require of strings: an error's text may hold any bytes. Details are held
// in c's encoding (see codec.Codec.AppendEnvelope); a detail that cannot be
// written in it (a JSON detail of a type this program does not know, on a
// binary codec, or the other way round) is left out, as docs/PROTOCOL.md
// section 8.1 allows.
func ToWire(c codec.Codec, err error) *protowsv1.Error {
	perr := protows.AsError(err)
	msg := perr.Message()
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	w := &protowsv1.Error{Code: protowsv1.Code(perr.Code()), Message: msg}
	for _, d := range perr.Details() {
		if a := detailToWire(c, d); a != nil {
			w.Details = append(w.Details, a)
		}
	}
	return w
}

func detailToWire(c codec.Codec, d *protows.ErrorDetail) *anypb.Any {
	if d == nil {
		return nil
	}
	url := typeURLPrefix + d.Type()
	if c.Binary() {
		b := d.Bytes()
		if b == nil {
			return nil
		}
		return &anypb.Any{TypeUrl: url, Value: b}
	}
	j, err := d.MarshalJSON()
	if err != nil {
		return nil
	}
	return &anypb.Any{TypeUrl: url, Value: j}
}

// FromWire returns the error a peer sent on a connection of codec c. A
// missing error or one without a code (a protocol violation) becomes
// protows.CodeUnknown. Details whose types this program does not know are
// kept as they came (see protows.ErrorDetail).
func FromWire(c codec.Codec, w *protowsv1.Error) *protows.Error {
	code := protows.Code(w.GetCode())
	if code == 0 {
		code = protows.CodeUnknown
	}
	var cause error
	if msg := w.GetMessage(); msg != "" {
		cause = message(msg)
	}
	perr := protows.NewError(code, cause)
	for _, a := range w.GetDetails() {
		if c.Binary() {
			// The frame's buffer is the envelope's own: the detail may
			// keep it.
			d, err := protows.NewErrorDetail(a)
			if err == nil {
				perr.AddDetail(d)
			}
			continue
		}
		d := new(protows.ErrorDetail)
		if d.UnmarshalJSON(a.GetValue()) == nil {
			perr.AddDetail(d)
		}
	}
	return perr
}

// message is the text of an error received from a peer: only text
// survives the wire.
type message string

func (m message) Error() string { return string(m) }
