package e2e

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPhasesAndUndoStack runs a phase list of our own: the failing phase
// stops the list and is named, and Teardown pops exactly what was
// registered, in reverse, on a context that is not cancelled even though
// the caller's is.
func TestPhasesAndUndoStack(t *testing.T) {
	var log []string
	mk := func(name string, err error) phase {
		return phase{name, func(e *Env, ctx context.Context) error {
			log = append(log, "run "+name)
			e.onUndo(name, func(ctx context.Context) error {
				if ctx.Err() != nil {
					t.Errorf("undo %s ran on a cancelled context", name)
				}
				log = append(log, "undo "+name)
				return nil
			}, func(context.Context) error { log = append(log, "keep "+name); return nil })
			return err
		}}
	}
	boom := errors.New("boom")
	list := []phase{mk("a", nil), mk("b", nil), mk("c", boom), mk("d", nil)}
	for _, retain := range []bool{false, true} {
		log = nil
		e := &Env{cfg: Config{Retain: retain, TeardownTimeout: time.Minute}, p: NewPrinter(nil, time.Now(), false)}
		err := e.runPhases(context.Background(), list)
		var pe *PhaseError
		if !errors.As(err, &pe) || pe.Phase != "c" || !errors.Is(err, boom) {
			t.Fatalf("runPhases = %v, want a PhaseError naming c", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
		verb := map[bool]string{false: "undo", true: "keep"}[retain]
		want := []string{"run a", "run b", "run c", verb + " c", verb + " b", verb + " a"}
		if !slices.Equal(log, want) {
			t.Errorf("retain=%v: %q, want %q", retain, log, want)
		}
		// Twice is a no-op.
		n := len(log)
		_ = e.Teardown(ctx)
		if len(log) != n {
			t.Errorf("second Teardown ran undos again: %q", log[n:])
		}
	}
}
