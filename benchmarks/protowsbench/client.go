package protowsbench

import (
	"context"
	"errors"
	"fmt"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
)

// codecOf returns the protows codec named c, the Protobuf codec with the
// given options.
func codecOf(c string, proto ...codec.ProtoOption) (codec.Codec, error) {
	switch c {
	case harness.CodecProto:
		return codec.Proto(proto...), nil
	case harness.CodecJSON:
		return codec.JSON(), nil
	}
	return nil, fmt.Errorf("protowsbench: unknown codec %q", c)
}

// dialAll opens n clients with default options and the codec, closing all
// of them if one fails.
func dialAll(ctx context.Context, url string, c codec.Codec, n int) ([]*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	clients := make([]*client.Client, 0, n)
	for range n {
		cl, err := client.Dial(ctx, url, client.WithCodec(c))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("protowsbench: dial: %w", err), closeAll(clients))
		}
		clients = append(clients, cl)
	}
	return clients, nil
}

func closeAll(clients []*client.Client) error {
	var errs []error
	for _, c := range clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
