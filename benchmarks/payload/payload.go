// Package payload builds the benchmark payloads shared by the codec
// micro-benchmarks and the load tool, so both measure the same bytes.
package payload

import (
	"fmt"

	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
)

// Size names a payload size.
type Size string

// The sizes of the benchmarks.
const (
	// Small is about 64 bytes in the Protobuf encoding: a few scalars.
	Small Size = "small"
	// Medium is about 1 KB: nested, repeated fields and a map.
	Medium Size = "medium"
	// Large is about 64 KB.
	Large Size = "large"
)

// Sizes lists the sizes, smallest first.
var Sizes = []Size{Small, Medium, Large}

// New returns a deterministic sample of the given size. It panics on an
// unknown size.
func New(size Size) *benchv1.Sample {
	switch size {
	case Small:
		return sample(0)
	case Medium:
		return sample(15)
	case Large:
		return sample(1100)
	}
	panic(fmt.Sprintf("payload: unknown size %q", size))
}

func sample(items int) *benchv1.Sample {
	s := &benchv1.Sample{
		Id:        "sample-0001",
		Timestamp: 1795000000123456789,
		Text:      "the quick brown fox jumps over",
	}
	if items == 0 {
		return s
	}
	s.Tags = map[string]string{"region": "eu-west", "tier": "gold", "source": "bench"}
	for i := range items {
		s.Items = append(s.Items, &benchv1.Item{
			Name:      fmt.Sprintf("item-%04d widget deluxe", i),
			Price:     float64(i)*1.25 + 0.99,
			Quantity:  int32(i%17 + 1),
			Labels:    []string{"red", "large", fmt.Sprintf("batch-%d", i%9)},
			Available: i%3 != 0,
		})
	}
	return s
}
