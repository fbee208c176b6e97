package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/types/known/anypb"
)

// decodeFrameStd is the JSON frame decoder built on encoding/json that
// decodeJSONFrame replaced; the differential tests hold the new one to it.
func decodeFrameStd(src []byte) ([]*protowsv1.Envelope, error) {
	trimmed := bytes.TrimLeft(src, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errEmptyFrame
	}
	if trimmed[0] != '[' {
		e, err := decodeJSONEnvelopeStd(src)
		if err != nil {
			return nil, err
		}
		return []*protowsv1.Envelope{e}, nil
	}
	// Split the array first: a RawMessage costs a slice header, so the
	// envelope limit is checked before envelopes are built.
	var raws []json.RawMessage
	if err := json.Unmarshal(src, &raws); err != nil {
		return nil, fmt.Errorf("codec: bad frame: %w", err)
	}
	switch {
	case len(raws) == 0:
		return nil, errEmptyFrame
	case len(raws) > MaxEnvelopesPerFrame:
		return nil, fmt.Errorf("%w: %d", ErrTooManyEnvelopes, len(raws))
	}
	envs := make([]*protowsv1.Envelope, len(raws))
	for i, raw := range raws {
		e, err := decodeJSONEnvelopeStd(raw)
		if err != nil {
			return nil, fmt.Errorf("envelope %d: %w", i, err)
		}
		envs[i] = e
	}
	return envs, nil
}

func decodeJSONEnvelopeStd(src []byte) (*protowsv1.Envelope, error) {
	var je jsonEnvelope
	if err := json.Unmarshal(src, &je); err != nil {
		return nil, fmt.Errorf("codec: bad envelope: %w", err)
	}
	e := &protowsv1.Envelope{
		Id:       je.ID,
		Method:   je.Method,
		MethodId: je.MethodID,
		Metadata: je.Metadata,
		Seq:      je.Seq,
		Credit:   je.Credit,

		IdempotencyKey: je.IdempotencyKey,
		TimeoutMs:      je.TimeoutMs,
	}
	if je.Kind != "" {
		k, ok := kindValues[je.Kind]
		if !ok {
			return nil, fmt.Errorf("codec: bad envelope: unknown kind %q", je.Kind)
		}
		e.Kind = k
	}
	if len(je.Payload) > 0 && string(je.Payload) != "null" {
		e.Payload = je.Payload
	}
	if je.Error != nil {
		e.Error = &protowsv1.Error{Code: protowsv1.Code(je.Error.Code), Message: je.Error.Message}
		for _, raw := range je.Error.Details {
			var head struct {
				Type string `json:"@type"`
			}
			if raw[0] != '{' {
				return nil, errors.New("codec: bad envelope: an error detail is not an object")
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return nil, fmt.Errorf("codec: bad envelope: %w", err)
			}
			if head.Type == "" {
				return nil, errors.New("codec: bad envelope: an error detail has no \"@type\"")
			}
			e.Error.Details = append(e.Error.Details, &anypb.Any{TypeUrl: head.Type, Value: raw})
		}
	}
	if r := je.Resume; r != nil {
		e.Resume = &protowsv1.Resume{Epoch: r.Epoch, Offset: r.Offset, History: r.History}
	}
	if p := je.Position; p != nil {
		e.Position = &protowsv1.Position{Epoch: p.Epoch, Offset: p.Offset, Latest: p.Latest}
		if p.Recovery != "" {
			r, ok := recoveryValues[p.Recovery]
			if !ok {
				r = recoveryUnknown
			}
			e.Position.Recovery = r
		}
	}
	return e, nil
}
