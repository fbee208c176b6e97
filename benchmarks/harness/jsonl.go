package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSONL writes results as JSON lines, one Result per line, with every
// repetition's raw figures: the format in which load tools of other modules
// (the Centrifuge baseline) hand results to the report.
func WriteJSONL(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("harness: write results: %w", err)
		}
	}
	return nil
}

// ReadJSONL reads results written by WriteJSONL. Blank lines are skipped.
func ReadJSONL(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			return out, fmt.Errorf("harness: results line %d: %w", line, err)
		}
		out = append(out, res)
	}
	return out, sc.Err()
}
