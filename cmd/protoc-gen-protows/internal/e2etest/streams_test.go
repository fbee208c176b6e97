package e2etest

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	streamsv1 "github.com/protows/protows/cmd/protoc-gen-protows/testdata/golden-streams/go/streams/v1"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/router"
)

// tally implements streams.v1.Tally, a service with a method of every
// kind, from the golden-streams package.
type tally struct {
	streamsv1.UnimplementedTallyHandler
}

var _ streamsv1.TallyHandler = tally{}

func (tally) Add(_ context.Context, n *streamsv1.Number) (*streamsv1.Total, error) {
	return &streamsv1.Total{Sum: n.GetN(), Count: 1}, nil
}

func (tally) Count(_ context.Context, n *streamsv1.Number, s router.Stream[*streamsv1.Number]) error {
	for i := int64(1); i <= n.GetN(); i++ {
		if err := s.Send(&streamsv1.Number{N: i}); err != nil {
			return err
		}
	}
	return nil
}

func (tally) Sum(_ context.Context, s router.ClientStream[*streamsv1.Number]) (*streamsv1.Total, error) {
	t := &streamsv1.Total{}
	for s.Receive() {
		t.Sum += s.Msg().GetN()
		t.Count++
	}
	return t, s.Err()
}

func (tally) Running(_ context.Context, s router.BidiStream[*streamsv1.Number, *streamsv1.Total]) error {
	t := &streamsv1.Total{}
	for {
		n, err := s.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		t.Sum += n.GetN()
		t.Count++
		if err := s.Send(&streamsv1.Total{Sum: t.Sum, Count: t.Count}); err != nil {
			return err
		}
	}
}

// TestGeneratedStreams calls the four kinds of method through the
// generated client and handler, in both codecs; OldSum, not implemented,
// answers unimplemented.
func TestGeneratedStreams(t *testing.T) {
	r := router.New()
	if err := streamsv1.RegisterTallyHandler(r, tally{}); err != nil {
		t.Fatal(err)
	}
	url := serve(t, r)
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(cd.Name(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, url, client.WithCodec(cd))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc := streamsv1.NewTallyClient(c)

			if res, err := tc.Add(ctx, &streamsv1.Number{N: 4}); err != nil || res.GetSum() != 4 {
				t.Errorf("Add: %v, %v", res, err)
			}
			st, err := tc.Count(ctx, &streamsv1.Number{N: 3})
			if msgs, err := collect(st, err); err != nil || len(msgs) != 3 || msgs[2].GetN() != 3 {
				t.Errorf("Count: %v, %v", msgs, err)
			}
			sum, err := tc.Sum(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := int64(1); i <= 100; i++ {
				if err := sum.Send(&streamsv1.Number{N: i}); err != nil {
					t.Fatal(err)
				}
			}
			if res, err := sum.CloseAndReceive(); err != nil || res.GetSum() != 5050 || res.GetCount() != 100 {
				t.Errorf("Sum: %v, %v", res, err)
			}
			run, err := tc.Running(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := int64(1); i <= 10; i++ {
				if err := run.Send(&streamsv1.Number{N: i}); err != nil {
					t.Fatal(err)
				}
				res, err := run.Receive()
				if err != nil || res.GetSum() != i*(i+1)/2 {
					t.Fatalf("Running %d: %v, %v", i, res, err)
				}
			}
			if err := run.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := run.Receive(); !errors.Is(err, io.EOF) {
				t.Errorf("Running after CloseSend: %v, want io.EOF", err)
			}
			old, err := tc.OldSum(ctx) //nolint:staticcheck // the deprecated method is part of the test
			if err != nil {
				t.Fatal(err)
			}
			if _, err := old.CloseAndReceive(); protows.CodeOf(err) != protows.CodeUnimplemented {
				t.Errorf("OldSum: %v, want unimplemented", err)
			}
		})
	}
}
