// Package wireerr converts between protows.Error and its wire form, the
// Error message of an ERROR or STREAM_END envelope. It is internal so that
// the root package, the vocabulary every part shares, does not import the
// generated code of the wire protocol.
package wireerr

import (
	"strings"
	"unicode/utf8"

	protows "github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// ToWire returns the wire form of err (see protows.AsError). The message is
// made valid UTF-8, which both codecs require of strings: an error's text
// may hold any bytes.
func ToWire(err error) *protowsv1.Error {
	perr := protows.AsError(err)
	msg := perr.Message()
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	return &protowsv1.Error{Code: protowsv1.Code(perr.Code()), Message: msg}
}

// FromWire returns the error a peer sent. A missing error or one without a
// code (a protocol violation) becomes protows.CodeUnknown.
func FromWire(w *protowsv1.Error) *protows.Error {
	code := protows.Code(w.GetCode())
	if code == 0 {
		code = protows.CodeUnknown
	}
	var cause error
	if msg := w.GetMessage(); msg != "" {
		cause = message(msg)
	}
	return protows.NewError(code, cause)
}

// message is the text of an error received from a peer: only text
// survives the wire.
type message string

func (m message) Error() string { return string(m) }
