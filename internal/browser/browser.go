// Package browser starts headless Chromium, driven with chromedp, for the checks of web pages:
// cmd/uishots (the Temporal UI) and the back-office page's tests. chromedp speaks the DevTools
// protocol from Go, so a check waits for what a page shows instead of sleeping.
package browser

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Find is the Chromium binary: path when given, else the first of the usual names in PATH.
func Find(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chromium-headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium in PATH: apt-get install chromium")
}

// ForTest is the Chromium binary for a test (CHROMIUM, or found in PATH). Without one the test
// fails and says how to get one, unless KOMBOSYNC_SKIP_BROWSER=1 skips it explicitly.
func ForTest(t testing.TB) string {
	t.Helper()
	exe, err := Find(os.Getenv("CHROMIUM"))
	if err != nil {
		if os.Getenv("KOMBOSYNC_SKIP_BROWSER") == "1" {
			t.Skip("KOMBOSYNC_SKIP_BROWSER=1:", err)
		}
		t.Fatalf("%v (or set KOMBOSYNC_SKIP_BROWSER=1 to skip the browser checks)", err)
	}
	return exe
}

// Start is a chromedp context on a new headless Chromium (exe) with a window of width × height;
// cancel stops the browser.
func Start(ctx context.Context, exe string, width, height int) (context.Context, context.CancelFunc) {
	// No sandbox: Chromium refuses it as root, and containers (CI) often lack the namespaces it
	// needs; these checks load only this project's own pages on loopback.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(width, height),
		chromedp.Flag("hide-scrollbars", true), chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	return bctx, func() { cancelBrowser(); cancelAlloc() }
}
