// Command uishots checks the Temporal UI the way an operator sees it and takes the README's
// screenshots: it opens the list of integrations, the list filtered by KomboSyncState and one
// integration's workflow page in headless Chromium, waits until each shows what it must (the
// workflow ids, the static summary, the live details, the activity and timer summaries), and
// writes a PNG of each. It exits 1 naming whatever is missing.
//
// Run it against the local stack (make dev): go run ./cmd/uishots, or make ui-screenshots.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/internal/browser"
	"github.com/kombosync/kombosync/workflows"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "uishots:", err)
		os.Exit(1)
	}
}

func run() error {
	ui := flag.String("ui", "http://localhost:8233", "the Temporal Web UI")
	address := flag.String("temporal", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "the Temporal frontend")
	namespace := flag.String("namespace", envOr("TEMPORAL_NAMESPACE", "default"), "the namespace")
	integration := flag.String("integration", "personio:demo-hris", "the integration whose workflow page to show")
	out := flag.String("out", "docs/screenshots", "where the PNGs go")
	chromium := flag.String("chromium", "", "the Chromium binary; looked up in PATH when empty")
	timeout := flag.Duration("timeout", 45*time.Second, "how long each page may take to show what it must")
	flag.Parse()

	exe, err := browser.Find(*chromium)
	if err != nil {
		return err
	}
	ctx := context.Background()
	tc, err := client.DialContext(ctx, client.Options{HostPort: *address, Namespace: *namespace})
	if err != nil {
		return fmt.Errorf("connect to temporal at %s: %w", *address, err)
	}
	defer tc.Close()
	wfID := workflows.IntegrationWorkflowID(*integration)
	d, err := tc.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		return fmt.Errorf("describe %s (is make dev running?): %w", wfID, err)
	}
	runID := d.WorkflowExecutionInfo.Execution.RunId
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}

	bctx, cancel := browser.Start(ctx, exe, 1600, 1000)
	defer cancel()

	list := func(query string) string {
		return fmt.Sprintf("%s/namespaces/%s/workflows?query=%s", *ui, url.PathEscape(*namespace), url.QueryEscape(query))
	}
	workflowPage := func(tab string) string {
		return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/%s", *ui, url.PathEscape(*namespace), url.PathEscape(wfID),
			url.PathEscape(runID), tab)
	}
	pages := []struct {
		file, url string
		want      []string
	}{
		{"integrations.png", list(`WorkflowType="IntegrationSync"`), []string{wfID, workflows.IntegrationSyncType}},
		{"integrations-idle.png", list(`WorkflowType="IntegrationSync" AND KomboSyncState="idle"`), []string{wfID}},
		{"integration.png", workflowPage("history"), []string{wfID, "FetchEndpoint", "fetch hris/"}},
		{"integration-search-attributes.png", workflowPage("metadata"), []string{"KomboSyncState", "KomboIntegrationId", "KomboLastSyncAt"}},
		{"integration-user-metadata.png", workflowPage("user-metadata"), []string{"Kombo integration " + *integration, "Current Details", "last sync:", "load integration", "debounce"}},
	}
	var missing []string
	for _, p := range pages {
		file := filepath.Join(*out, p.file)
		lacks, err := shoot(bctx, p.url, p.want, *timeout, file)
		if err != nil {
			return fmt.Errorf("%s: %w", p.url, err)
		}
		for _, w := range lacks {
			missing = append(missing, fmt.Sprintf("%s does not show %q", p.file, w))
		}
		fmt.Printf("%s: %s\n", file, p.url)
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return nil
}

// shoot opens url, waits until the page's text holds every wanted string (or timeout), takes a
// full-page screenshot into file and returns what it never showed.
func shoot(ctx context.Context, url string, want []string, timeout time.Duration, file string) ([]string, error) {
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		return nil, err
	}
	var lacks []string
	deadline := time.Now().Add(timeout)
	for {
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](pageText))
		if err != nil {
			return nil, err
		}
		lacks = lacks[:0]
		for _, w := range want {
			if !strings.Contains(text, w) {
				lacks = append(lacks, w)
			}
		}
		if len(lacks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond) // polling the page's rendering, up to the deadline
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return nil, err
	}
	return lacks, os.WriteFile(file, png, 0o644)
}

// pageText is the page's visible text with that of its frames: the UI renders summaries and
// details (Markdown) in sandboxed iframes.
const pageText = `[document.body ? document.body.innerText : ""].concat(
	Array.from(document.querySelectorAll("iframe")).map(f => {
		try { return f.contentDocument.body.innerText } catch (e) { return f.srcdoc || "" }
	})).join("\n")`

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
