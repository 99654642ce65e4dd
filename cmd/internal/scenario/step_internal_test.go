package scenario

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
)

// TestFirstStepThatDoesNotHappen: a story stops at the first step that
// does not happen and says which, with what it saw; the steps before it
// are printed as done.
func TestFirstStepThatDoesNotHappen(t *testing.T) {
	s := Scenario{Name: "broken", Play: func(ctx context.Context, r *Run) error {
		if err := r.Do("a thing that works", func() error { return nil }); err != nil {
			return err
		}
		if err := r.Await(ctx, "a slot opens by itself", func() error {
			return &fatal{errors.New("slot 1 stayed locked")}
		}); err != nil {
			return err
		}
		t.Error("the story went on past a failed step")
		return nil
	}}
	var out bytes.Buffer
	err := RunAll(t.Context(), []Scenario{s}, depot.Options{Dir: t.TempDir(), Smartboxd: depottest.Smartboxd(t)}, &out)
	require.EqualError(t, err, "scenario broken: step 2 (a slot opens by itself): slot 1 stayed locked")
	se, ok := errors.AsType[*StepError](err)
	require.True(t, ok)
	require.Equal(t, 2, se.Step)
	require.Contains(t, out.String(), " 1. a thing that works")
	require.Contains(t, out.String(), "FAIL broken")
	require.NotContains(t, out.String(), " 2. a slot opens by itself")
}
