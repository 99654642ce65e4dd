package link

import (
	"errors"
	"fmt"
	"testing"
)

// The waiters are bounded; a slot freed is taken again; an answer for a
// nonce nobody waits for, or a second one, goes nowhere.
func TestProbeWaitersBounded(t *testing.T) {
	p := newProbeWaiters()
	chans := make([]<-chan probeAnswer, maxProbes)
	for i := range chans {
		ch, err := p.add(fmt.Sprint(i))
		if err != nil {
			t.Fatalf("probe %d of %d: %v", i+1, maxProbes, err)
		}
		chans[i] = ch
	}
	if _, err := p.add("one more"); !errors.Is(err, ErrProbeBusy) {
		t.Fatalf("probe %d: got %v, want ErrProbeBusy", maxProbes+1, err)
	}
	p.answer("0", probeAnswer{keyID: "k1"})
	p.answer("0", probeAnswer{keyID: "k2"}) // a duplicate delivery: dropped
	p.answer("nobody", probeAnswer{keyID: "k3"})
	if a := <-chans[0]; a.keyID != "k1" {
		t.Fatalf("first answer: got key %q, want k1", a.keyID)
	}
	p.remove("0")
	if _, err := p.add("again"); err != nil {
		t.Fatalf("a freed slot: %v", err)
	}
}
