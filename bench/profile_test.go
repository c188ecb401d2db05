//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// part names a share of a CPU profile: the samples with any of its functions on their stack
// (matched by substring of the function's full name) that no earlier part claimed.
type part struct {
	name  string
	funcs []string
}

// profiled runs f under this process's CPU profiler and returns the share of the samples that
// fell to each part, in order, with "other" last. The profile is read with pprof's own parser
// (github.com/google/pprof/profile), the reference reader of the format runtime/pprof writes.
func profiled(t *testing.T, parts []part, f func()) []float64 {
	t.Helper()
	var buf bytes.Buffer
	must(t, pprof.StartCPUProfile(&buf))
	f()
	pprof.StopCPUProfile()
	p, err := profile.Parse(&buf)
	must(t, err)
	shares := make([]float64, len(parts)+1)
	var total float64
	for _, s := range p.Sample {
		v := float64(s.Value[len(s.Value)-1]) // cpu nanoseconds
		total += v
		shares[claim(parts, s)] += v
	}
	for i := range shares {
		shares[i] /= max(total, 1)
	}
	return shares
}

func claim(parts []part, s *profile.Sample) int {
	for i, p := range parts {
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function == nil {
					continue
				}
				for _, f := range p.funcs {
					if strings.Contains(l.Function.Name, f) {
						return i
					}
				}
			}
		}
	}
	return len(parts)
}

// sharesText prints the parts' shares as "name 41%, …, other 3%".
func sharesText(parts []part, shares []float64) string {
	var out []string
	for i, p := range parts {
		out = append(out, fmt.Sprintf("%s %.0f%%", p.name, 100*shares[i]))
	}
	return strings.Join(append(out, fmt.Sprintf("other %.0f%%", 100*shares[len(parts)])), ", ")
}
