package conformance

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
)

// match checks got (a decoded JSON value: map[string]any, []any, string,
// float64, bool or nil) against a case's pattern want:
//
//   - "$any" matches anything, even absence;
//   - "$name" binds the variable name to got the first time and must equal
//     it afterwards (the runner substitutes bound variables before);
//   - null matches absence only;
//   - {"$oneOf": [a, b]} matches when one of the patterns does;
//   - {"$contains": "s"} matches a string that contains s;
//   - {"$exact": {...}} matches an object with exactly those keys;
//   - any other object matches an object that has at least its keys, each
//     matching (a key whose pattern is null must be absent);
//   - arrays match element by element; numbers by value.
//
// Bindings made by a failed match are not kept.
func match(want, got any, vars map[string]any) error {
	trial := maps.Clone(vars)
	if err := matchAt("", want, got, trial); err != nil {
		return err
	}
	maps.Copy(vars, trial)
	return nil
}

func matchAt(path string, want, got any, vars map[string]any) error {
	fail := func(format string, args ...any) error {
		where := path
		if where == "" {
			where = "value"
		}
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	switch w := want.(type) {
	case nil:
		if got != nil {
			return fail("want absent, got %s", show(got))
		}
		return nil
	case string:
		if w == "$any" {
			return nil
		}
		if name, ok := strings.CutPrefix(w, "$"); ok && name != "" {
			if b, bound := vars[name]; bound {
				return matchAt(path, b, got, vars)
			}
			if got == nil {
				return fail("want a value for $%s, got none", name)
			}
			vars[name] = got
			return nil
		}
		if s, ok := got.(string); !ok || s != w {
			return fail("want %s, got %s", show(w), show(got))
		}
		return nil
	case json.Number, float64, int:
		wf, _ := toFloat(w)
		gf, err := toFloat(got)
		if err != nil || wf != gf {
			return fail("want %v, got %s", w, show(got))
		}
		return nil
	case bool:
		if b, ok := got.(bool); !ok || b != w {
			return fail("want %v, got %s", w, show(got))
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fail("want %s, got %s", show(w), show(got))
		}
		for i := range w {
			if err := matchAt(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], vars); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if alts, ok := w["$oneOf"].([]any); ok && len(w) == 1 {
			for _, a := range alts {
				trial := maps.Clone(vars)
				if matchAt(path, a, got, trial) == nil {
					maps.Copy(vars, trial)
					return nil
				}
			}
			return fail("none of %s matched %s", show(alts), show(got))
		}
		if sub, ok := w["$contains"].(string); ok && len(w) == 1 {
			if s, ok := got.(string); !ok || !strings.Contains(s, sub) {
				return fail("want a string containing %s, got %s", show(sub), show(got))
			}
			return nil
		}
		if ex, ok := w["$exact"].(map[string]any); ok && len(w) == 1 {
			g, ok := got.(map[string]any)
			if !ok {
				return fail("want an object, got %s", show(got))
			}
			for k := range g {
				if _, ok := ex[k]; !ok {
					return fail("unexpected key %q in %s", k, show(got))
				}
			}
			return matchAt(path, ex, got, vars)
		}
		g, ok := got.(map[string]any)
		if !ok {
			return fail("want an object, got %s", show(got))
		}
		for k, wv := range w {
			if err := matchAt(joinPath(path, k), wv, g[k], vars); err != nil {
				return err
			}
		}
		return nil
	}
	return fail("bad pattern %T", want)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// show renders a value for a message, shortened.
func show(v any) string {
	b, err := marshalJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return string(b)
}
