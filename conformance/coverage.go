package conformance

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Coverage maps each section of PROTOCOL.md that a case names to the
// cases, in order.
func Coverage(suites []*Suite) map[string][]string {
	cover := map[string][]string{}
	for _, s := range suites {
		for _, c := range s.Cases {
			for _, sec := range c.Sections {
				cover[sec] = append(cover[sec], c.FullName())
			}
		}
	}
	return cover
}

// sectionHeading matches PROTOCOL.md's numbered headings.
var sectionHeading = regexp.MustCompile(`(?m)^#{2,3} (\d+(?:\.\d+)?)\.? (.+)$`)

// Sections returns the numbered sections of a PROTOCOL.md text, in order,
// with their titles.
func Sections(protocol string) [][2]string {
	var out [][2]string
	for _, m := range sectionHeading.FindAllStringSubmatch(protocol, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// Uncovered returns the sections of PROTOCOL.md that no case names, a
// section counting as named when one of its subsections is.
func Uncovered(suites []*Suite, protocol string) []string {
	cover := Coverage(suites)
	var out []string
	for _, s := range Sections(protocol) {
		sec := s[0]
		n := len(cover[sec])
		for k, v := range cover {
			if strings.HasPrefix(k, sec+".") {
				n += len(v)
			}
		}
		if n == 0 {
			out = append(out, sec)
		}
	}
	return out
}

// CoverageTable renders the coverage of PROTOCOL.md's sections as a
// Markdown table: section, title, the number of cases per mode, and the
// cases (server cases, then client cases).
func CoverageTable(suites []*Suite, protocol string) string {
	mode := map[string]string{}
	for _, s := range suites {
		for _, c := range s.Cases {
			mode[c.FullName()] = c.Mode
		}
	}
	cover := Coverage(suites)
	var b strings.Builder
	b.WriteString("| section | title | server cases | client cases | cases |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range Sections(protocol) {
		names := slices.Clone(cover[s[0]])
		slices.SortStableFunc(names, func(a, b string) int { return strings.Compare(mode[b], mode[a]) })
		ns, nc := 0, 0
		for _, n := range names {
			if mode[n] == ModeServer {
				ns++
			} else {
				nc++
			}
		}
		list := make([]string, len(names))
		for i, n := range names {
			list[i] = "`" + n + "`"
		}
		cases := strings.Join(list, ", ")
		if cases == "" {
			cases = "(through its subsections)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s[0], s[1], strconv.Itoa(ns), strconv.Itoa(nc), cases)
	}
	return b.String()
}
