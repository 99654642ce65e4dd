package boxsocket

// The admin routes a technician uses: the grants and a local release.

import (
	"context"
	"fmt"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/smartbox-oss/smartbox/box"
)

// Validate checks a release request as the daemon does before it moves a
// lock: By and Reason present, printable, within their bounds.
func (r ReleaseRequest) Validate() error {
	if err := printable("by", r.By, MaxReleaseBy); err != nil {
		return err
	}
	return printable("reason", r.Reason, MaxReleaseReason)
}

// printable checks one required text field: it goes into an audited event
// and onto a technician's terminal, so no control characters (a newline
// would forge a log line, an escape would repaint the screen).
func printable(name, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is required: say who releases the slot and why", name)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", name)
	case utf8.RuneCountInString(s) > max:
		return fmt.Errorf("%s is %d characters, over the %d allowed", name, utf8.RuneCountInString(s), max)
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("%s has a control or unprintable character %U: plain text only", name, c)
		}
	}
	return nil
}

// Grants is every grant the box holds (never a code).
func (c *Client) Grants(ctx context.Context) ([]box.Grant, error) {
	var g []box.Grant
	err := c.do(ctx, http.MethodGet, "/v1/grants", nil, &g, RequestTimeout)
	return g, err
}

// Release releases slot for a take or a return, recorded with r's who and
// why and this process's uid. A slot already released is a 409 *Error.
func (c *Client) Release(ctx context.Context, slot int, r ReleaseRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/slots/%d/release", slot), r, nil, RequestTimeout)
}
