package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/store"
)

// withStore opens the store for a jobs command and checks the integration is known.
func withStore(ctx context.Context, cfg *config.Config, integrationID string, f func(*store.Store) (result, error)) (result, error) {
	st, pool, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := st.IntegrationKnown(ctx, integrationID); err != nil {
		return nil, err
	}
	return f(st)
}

// jobsCommand: job links (README "Job links"), the same operations as the back-office API.
func (c *cli) jobsCommand() *ffcli.Command {
	var (
		hints                 store.JobHints
		status, q, by         string
		needsPerson, withDead bool
	)
	hintFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&hints.ID, "id", "", "Kombo's job id")
		fs.StringVar(&hints.RemoteID, "remote-id", "", "the ATS's job id (or a posting's)")
		fs.StringVar(&hints.JobCode, "code", "", "the job code")
		fs.StringVar(&hints.URL, "url", "", "the job's or a posting's URL")
		fs.StringVar(&hints.Title, "title", "", "the job's title (only ever proposed)")
	}
	list := c.commandWith("list", "jobs list <integration> [--status OPEN,CLOSED] [--q text] [--deleted]", "the integration's synced ATS jobs",
		config.PartDatabase, func(fs *flag.FlagSet) {
			fs.StringVar(&status, "status", "", "comma-separated OPEN, CLOSED, DRAFT, ARCHIVED")
			fs.StringVar(&q, "q", "", "text in the name or job code")
			fs.BoolVar(&withDead, "deleted", false, "include jobs deleted in the ATS")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs list", args, 1, "an integration id"); err != nil {
				return nil, err
			}
			var statuses []string
			for _, s := range splitList(status) {
				statuses = append(statuses, strings.ToUpper(s))
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				jobs, err := st.ListJobs(ctx, args[0], statuses, q, "", 500, withDead)
				if err != nil {
					return nil, err
				}
				if jobs == nil {
					jobs = []store.SyncedJob{}
				}
				return jobList{Jobs: jobs}, nil
			})
		})
	lookup := c.commandWith("lookup", "jobs lookup <integration> (--id|--remote-id|--code|--url|--title …)", "find the synced job a hint names",
		config.PartDatabase, hintFlags,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs lookup", args, 1, "an integration id"); err != nil {
				return nil, err
			}
			if hints.Empty() {
				return nil, config.UsageError{Err: fmt.Errorf("give at least one of --id, --remote-id, --code, --url, --title")}
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				m, err := st.MatchJob(ctx, args[0], hints)
				return jobMatch{m}, err
			})
		})
	link := c.commandWith("link", "jobs link <integration> <app-job-id> (--id|--remote-id|--code|--url|--title …)",
		"link an application job: one exact hit is confirmed, several or a title proposed, none unresolved", config.PartDatabase, hintFlags,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs link", args, 2, "an integration id and the application's job id"); err != nil {
				return nil, err
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				l, err := st.LinkJob(ctx, args[0], args[1], hints)
				if err != nil {
					return nil, usageOf(err)
				}
				return linkResult{l}, nil
			})
		})
	byFlag := func(fs *flag.FlagSet) { fs.StringVar(&by, "by", "", "who decides (a person's handle; required)") }
	confirm := c.commandWith("confirm", "jobs confirm <integration> <app-job-id> <kombo-job-id> --by NAME", "a person confirms a link",
		config.PartDatabase, byFlag,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs confirm", args, 3, "an integration id, the application's job id and Kombo's job id"); err != nil {
				return nil, err
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				l, err := st.ConfirmLink(ctx, args[0], args[1], args[2], by)
				if err != nil {
					return nil, usageOf(err)
				}
				return linkResult{l}, nil
			})
		})
	reject := c.commandWith("reject", "jobs reject <integration> <app-job-id> --by NAME", "a person rejects a proposed link",
		config.PartDatabase, byFlag,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs reject", args, 2, "an integration id and the application's job id"); err != nil {
				return nil, err
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				l, err := st.RejectLink(ctx, args[0], args[1], by)
				if err != nil {
					return nil, usageOf(err)
				}
				return linkResult{l}, nil
			})
		})
	unlink := c.command("unlink", "jobs unlink <integration> <app-job-id>", "forget a link", config.PartDatabase,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs unlink", args, 2, "an integration id and the application's job id"); err != nil {
				return nil, err
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				if err := st.DeleteLink(ctx, args[0], args[1]); err != nil {
					return nil, err
				}
				return done{Subject: args[1], Outcome: "unlinked"}, nil
			})
		})
	links := c.commandWith("links", "jobs links <integration> [--needs-person]", "the links, with whether their job takes applications",
		config.PartDatabase, func(fs *flag.FlagSet) {
			fs.BoolVar(&needsPerson, "needs-person", false, "only proposed links and confirmed ones whose job no longer takes applications")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("jobs links", args, 1, "an integration id"); err != nil {
				return nil, err
			}
			return withStore(ctx, cfg, args[0], func(st *store.Store) (result, error) {
				ls, err := st.ListLinks(ctx, args[0], "", 500, needsPerson)
				if err != nil {
					return nil, err
				}
				if ls == nil {
					ls = []store.LinkView{}
				}
				return linkList{Links: ls}, nil
			})
		})
	return group("jobs", "job links (Kombo's ATS guide): list and look up jobs, link, confirm, reject, unlink",
		list, lookup, link, confirm, reject, unlink, links)
}

type jobList struct {
	Jobs []store.SyncedJob `json:"jobs"`
}

func (l jobList) text(w io.Writer) {
	if len(l.Jobs) == 0 {
		fmt.Fprintln(w, "no jobs")
	}
	for _, j := range l.Jobs {
		deleted := ""
		if j.Deleted {
			deleted = " (deleted in the ATS)"
		}
		fmt.Fprintf(w, "%s  %-8s %-10s %s%s", j.ID, j.Status, j.JobCode, j.Name, deleted)
		if len(j.Links) > 0 {
			fmt.Fprintf(w, "  linked: %s", strings.Join(j.Links, ", "))
		}
		fmt.Fprintln(w)
	}
}

type jobMatch struct{ store.JobMatch }

func (m jobMatch) text(w io.Writer) {
	if len(m.Exact) == 0 && len(m.Titles) == 0 {
		fmt.Fprintln(w, "no synced job matches")
	}
	for _, c := range m.Exact {
		fmt.Fprintf(w, "exact by %-11s %s  %-8s %s\n", c.Method, c.JobID, c.Status, c.Name)
	}
	for _, c := range m.Titles {
		fmt.Fprintf(w, "title %.2f          %s  %-8s %s\n", c.Score, c.JobID, c.Status, c.Name)
	}
}

type linkResult struct{ store.JobLink }

func (l linkResult) text(w io.Writer) {
	fmt.Fprintf(w, "%s → %s: %s", l.AppJobID, orNone(l.KomboJobID), l.State)
	if l.Method != "" {
		fmt.Fprintf(w, " (by %s)", l.Method)
	}
	if l.DecidedBy != "" {
		fmt.Fprintf(w, ", decided by %s", l.DecidedBy)
	}
	if l.DecidedAt != nil {
		fmt.Fprintf(w, " at %s", l.DecidedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	for _, p := range l.Proposals {
		fmt.Fprintf(w, "  proposal: %s %s %.2f %s\n", p.JobID, p.Method, p.Score, p.Name)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

type linkList struct {
	Links []store.LinkView `json:"links"`
}

func (l linkList) text(w io.Writer) {
	if len(l.Links) == 0 {
		fmt.Fprintln(w, "no links")
	}
	for _, v := range l.Links {
		activity := "takes applications"
		if !v.Active {
			activity = "no applications: " + v.Reason
		}
		fmt.Fprintf(w, "%s → %s  %s  %s\n", v.AppJobID, orNone(v.KomboJobID), v.State, activity)
	}
}
