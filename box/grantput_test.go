package box_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// GrantPut.Validate is the rule the box's store and the cloud both apply:
// the record, a driver ref the store can index, a code the keypad can type.
func TestGrantPutValidate(t *testing.T) {
	dc := func(ref, code string) box.GrantPut {
		return box.GrantPut{Grant: box.Grant{ID: "d-1", Kind: box.KindDriverCode, DriverRef: ref}, Code: code}
	}
	tests := []struct {
		name string
		g    box.GrantPut
		err  string // "": valid
	}{
		{"valid", dc("contact-7", "2468"), ""},
		{"no code: the receiver judges", dc("contact-7", ""), ""},
		{"bad record", box.GrantPut{Grant: box.Grant{ID: "b-1", Kind: box.KindBooking}, Code: "2468"}, "a booking needs at least one key"},
		{"longest driver ref", dc(strings.Repeat("r", box.MaxDriverRefLength), "2468"), ""},
		{"driver ref too long", dc(strings.Repeat("r", box.MaxDriverRefLength+1), "2468"), "driver_ref is 257 bytes, at most 256"},
		{"NUL in driver ref", dc("a\x00b", "2468"), "driver_ref holds a NUL byte"},
		{"code too short", dc("contact-7", "12"), "grant d-1: invalid record: code must be 4 to 16 digits"},
		{"code not digits", dc("contact-7", "12a4"), "code must be digits only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, box.ErrInvalidRecord)
			require.ErrorContains(t, err, tt.err)
			if tt.g.Code != "" {
				require.NotContains(t, err.Error(), tt.g.Code, "a code in an error")
			}
		})
	}
}

func TestGrantPutLogValueHidesCode(t *testing.T) {
	var buf bytes.Buffer
	g := box.GrantPut{Grant: box.Grant{ID: "b-1", Kind: box.KindBooking, KeyIDs: []string{"k1"}}, Code: "482913"}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("put", "grant", g)
	require.Contains(t, buf.String(), "grant.id=b-1")
	require.Contains(t, buf.String(), "grant.code_given=true")
	require.NotContains(t, buf.String(), "482913")
}
