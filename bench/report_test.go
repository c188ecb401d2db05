//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/kombosync/kombosync/internal/localstack"
)

// figure is one measured result with its goal.
type figure struct {
	N       int
	Title   string
	Result  string // the numbers
	Goal    string
	Met     bool
	Note    string // how it was measured; why a goal is missed and what would close the gap
	Skipped string
}

var figures []figure

func record(f figure) { figures = append(figures, f) }

// TestBenchmarks runs every figure in order, in one process on one machine, so ratios hold
// however noisy the machine, then prints the table and writes BENCHMARKS.md.
func TestBenchmarks(t *testing.T) {
	start := time.Now()
	only := os.Getenv("BENCH_ONLY") // one part, while working on it: the table is printed, BENCHMARKS.md left alone
	for _, part := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"ingest", benchIngest},       // figures 1–4
		{"gateway", benchGateway},     // figure 5
		{"freshness", benchFreshness}, // figure 6
		{"scale", benchScale},         // figures 7 and 8
		{"budget", benchBudget},       // figure 11
		{"outbound", benchOutbound},   // figures 12 and 13
		{"jobs", benchJobLookup},      // figure 14
		{"actions", benchActions},     // figures 15 and 16
	} {
		if only == "" || only == part.name {
			t.Run(part.name, part.run)
		}
	}
	writeReport(t, time.Since(start), only == "")
}

func writeReport(t *testing.T, took time.Duration, toFile bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nMeasured by `make bench` on %s, %d CPUs, %s, %s, in one run of %s. Every figure and its\n"+
		"baseline come from the same run on the same machine, so the ratios hold on a noisy machine.\n"+
		"PostgreSQL runs with its durable defaults (fsync on); Temporal is the dev server.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(),
		took.Round(time.Second))
	b.WriteString("| # | figure | result | goal | met |\n|---|---|---|---|---|\n")
	for _, f := range figures {
		met := "yes"
		switch {
		case f.Skipped != "":
			met = "not measured"
		case !f.Met:
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", f.N, f.Title, f.Result, f.Goal, met)
	}
	b.WriteString("\n## How each figure is measured\n\n")
	for _, f := range figures {
		fmt.Fprintf(&b, "%d. **%s.** %s\n", f.N, f.Title, strings.TrimSpace(f.Note+" "+f.Skipped))
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tFIGURE\tRESULT\tGOAL\tMET")
	for _, f := range figures {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%v\n", f.N, f.Title, f.Result, f.Goal, f.Met)
	}
	tw.Flush()
	for _, f := range figures {
		fmt.Printf("\n%d. %s\n", f.N, f.Note)
	}

	if !toFile || t.Failed() {
		return
	}
	root, err := localstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "BENCHMARKS.md"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println("wrote BENCHMARKS.md")
}
