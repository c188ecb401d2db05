// Package browser starts headless Chromium, driven with chromedp, for the checks of web pages:
// cmd/uishots (the Temporal UI) and the back-office page's tests. chromedp speaks the DevTools
// protocol from Go, so a check waits for what a page shows instead of sleeping.
package browser

import (
	"context"
	"errors"
	"os/exec"

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
