package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// adminClient talks to the running service's admin endpoint, found through
// DATA/admin.addr and authorised by DATA/admin.token.
type adminClient struct {
	*adminapi.AdminClient
}

func newAdminClient(d *dirFlags) (*adminClient, error) {
	cfg, err := loadConfigFor(d, false)
	if err != nil {
		return nil, err
	}
	dir := cfg.DataDir
	addr, err := os.ReadFile(filepath.Join(dir, bridge.FileAdminAddr))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s): start it with `smartbox-bridge serve`", errNoService, filepath.Join(dir, bridge.FileAdminAddr))
	}
	if err != nil {
		return nil, fmt.Errorf("admin address: %w", err)
	}
	tok, err := secretfile.Read(filepath.Join(dir, bridge.FileAdminToken), secretfile.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w (run as the user that runs the bridge)", err)
	}
	return &adminClient{adminapi.NewAdminClient("http://"+strings.TrimSpace(string(addr)), strings.TrimSpace(string(tok)))}, nil
}

// do is one admin call; a service that does not answer is errNoService.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	err := c.Do(ctx, method, path, in, out)
	if ue, ok := errors.AsType[*adminapi.UnreachableError](err); ok {
		return fmt.Errorf("%w at %s: %v", errNoService, ue.Base, ue.Err)
	}
	return err
}

// esc makes an id one segment of an admin API path.
func esc(s string) string { return url.PathEscape(s) }

// request is the admin API call a command makes.
type request struct {
	method, path string
	body         any // sent as JSON; nil: no body
}

// askFunc checks a command's flag values and positional arguments and says
// which admin call to make. It runs before the service is looked for, so a
// mistake on the command line is reported as one (exit 2) even when the
// service is down.
type askFunc func(pos []string) (request, error)

// get and post are the calls that need nothing from the flags.
func get(path string) askFunc  { return fixed(request{http.MethodGet, path, nil}) }
func post(path string) askFunc { return fixed(request{http.MethodPost, path, nil}) }

func fixed(r request) askFunc { return func([]string) (request, error) { return r, nil } }

// noAnswer is the answer of a call whose status is all it says.
type noAnswer struct{}

// adminCall is the shape of a client command: parse args (exactly the
// positional arguments names), let ask check them and say which call to
// make, make it against the running service found through d, and print the
// answer.
func adminCall[T any](ctx context.Context, fset *cli.FlagSet, d *dirFlags, args, names []string, ask askFunc, print func(T) error) error {
	return cli.Call(fset, args, names, func(pos []string) (T, error) {
		var answer T
		r, err := ask(pos)
		if err != nil {
			return answer, err
		}
		c, err := newAdminClient(d)
		if err != nil {
			return answer, err
		}
		var out any = &answer
		if _, none := out.(*noAnswer); none {
			out = nil
		}
		err = c.do(ctx, r.method, r.path, r.body, out)
		return answer, err
	}, print)
}

// required says that the flag --name must be given.
func required(name, v string) error {
	if v == "" {
		return cli.Usagef("--%s is required", name)
	}
	return nil
}

// parseTime reads the flag --name's time; empty is the zero time.
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, cli.Usagef("--%s %q: want RFC 3339, e.g. 2026-11-20T08:00:00Z", name, v)
	}
	return t, nil
}
