package natsdedupe_test

import (
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/types/known/anypb"
)

func wireErr() *protowsv1.Error {
	return &protowsv1.Error{Code: protowsv1.Code_CODE_ABORTED, Message: "conflict",
		Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/acme.v1.Quota", Value: []byte{8, 5}}}}
}
