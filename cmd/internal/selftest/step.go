package selftest

import (
	"fmt"
	"regexp"
	"strconv"
)

// Action is what the test asks the technician to do at the box.
type Action string

const (
	ActTake    Action = "take"     // take the key out of released slot Slot
	ActPutBack Action = "put back" // seat the key in released slot Slot again
	ActPress   Action = "press"    // press keypad key Key
	ActFob     Action = "fob"      // hold a fob at the reader
)

// Step is one instruction to the technician: its String is what Prompter.Say
// is given, and ParseStep reads it back (a scripted technician, a test).
type Step struct {
	Do   Action
	Slot int
	Key  string // ActPress: the key; ActTake, ActPutBack: the key's name for people
}

func (s Step) String() string {
	switch s.Do {
	case ActTake:
		return fmt.Sprintf("Slot %d is open: take %s out.", s.Slot, s.Key)
	case ActPutBack:
		return fmt.Sprintf("Slot %d is open again: put %s back into it.", s.Slot, s.Key)
	case ActPress:
		return fmt.Sprintf("Press key %s on the keypad.", s.Key)
	default:
		return "Hold a fob at the reader."
	}
}

var (
	stepSlot  = regexp.MustCompile(`^Slot (\d+) is open( again)?: (take|put) `)
	stepPress = regexp.MustCompile(`^Press key (.) on the keypad\.$`)
)

// ParseStep reads a Step's String back (Slot, Do; Key only for ActPress).
func ParseStep(s string) (Step, bool) {
	if m := stepSlot.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		if m[3] == "take" {
			return Step{Do: ActTake, Slot: n}, true
		}
		return Step{Do: ActPutBack, Slot: n}, true
	}
	if m := stepPress.FindStringSubmatch(s); m != nil {
		return Step{Do: ActPress, Key: m[1]}, true
	}
	if s == (Step{Do: ActFob}).String() {
		return Step{Do: ActFob}, true
	}
	return Step{}, false
}
