// Package box is the SmartBox controller: the rules of a key locker, as pure
// logic over narrow interfaces.
//
// # Basics
//
// A box has numbered slots (1..N). Each slot holds one key, and each key hangs
// on an RFID fob whose UID names it. A driver types a code on the keypad:
//   - a booking PIN opens the slot of its key(s);
//   - a driver code opens the slots of every key currently granted to that
//     driver (its own keys plus the keys of the driver's active bookings).
//
// A key is returned by scanning its fob at the reader: its home slot releases,
// the key is seated, the slot relocks.
//
// Every outcome is an Event, committed to the store together with the state
// change it belongs to (use counts, lockout) in one transaction.
//
// # What box does not know
//
// box imports none of SmartBox's other packages and no hardware, MQTT or
// database types. It declares the interfaces it needs (Store, Locks,
// KeySensors, Indicators, Clock) and the adapters in store/, hal/, sim/ and
// sync/ implement them. The clock is injected so that the rules about time
// (windows, lockout, entry timeout, release time) are tested without sleeping.
//
// # Clock trust
//
// A box boots with whatever its RTC says, and a board without a battery says
// 1970. A clock earlier than Config.BuildTime is not trusted; smartboxd sets
// it to its clock floor, never zero: the latest of the build time, a date
// compiled into its source, a config floor and the latest time its store
// remembers (see cmd/smartboxd). The controller reads it once, at New: a
// daemon whose floor rises while it runs restarts the controller (the
// process) if the clock goes back below it. While the clock is
// not trusted, grants with a window [from, until) follow Config.UntrustedClock:
// by default they are refused (with a code_refused event whose reason is
// clock_untrusted); grants without a window are unaffected.
//
// # Wrong codes: a tarpit, then a budget
//
// The box counts wrong codes (codes that match no grant, and entries too long
// to be one) in two buckets, both kept across restarts, both emptied only by
// time really passed (see below). docs/brute-force.md works out what they
// allow, with tables generated from Config's own functions.
//
// The tarpit keeps a guesser slow. The first LockoutThreshold (5) wrong codes
// cost nothing: a driver's typos. From then on each wrong code makes the
// keypad wait before it checks the next one: LockoutBase (30 s), doubling per
// further wrong code (1, 2, 4 min), capped at LockoutMax (5 min, reached at
// the 9th; the count stops there). Each wrong code from the threshold on
// records a lockout event with the end of its wait (Until). Codes typed
// during a wait are refused unchecked (a guesser learns nothing) and do not
// make it longer. The count goes down by one per LockoutDecay (15 min), and
// by nothing else: a good code forgives nothing, even one that opens a slot,
// so a driver who takes and returns their key between guesses guesses no
// faster than anyone else. The wait is never more than LockoutMax from now,
// whatever the clock did (an RTC set back must not wall the keypad for a
// year). Limit: the wait's end is a wall-clock time, so a clock stepped
// forward ends a wait early (by at most LockoutMax per wrong code).
//
// The budget bounds a patient guesser. Each wrong code the keypad checks
// also spends one of LockoutBudget (20); one is given back per LockoutRefill
// (60 h), counted from the first code spent. With the budget spent the keypad
// checks no code at all, a driver's good one neither, until the next refill:
// the code is refused unchecked (reason keypad_closed, with Until) and spends
// nothing. The wrong code that spends the last raises keypad_closed (Until:
// when codes are checked again), which the cloud tells the admin of at once;
// a signed restore_keypad command (Controller.RestoreKeypad) gives the whole
// budget back at once and records keypad_restored with who, why and the
// command id. Fobs are not affected: a key can always be returned.
//
// "Time really passed" is the lesser of what the wall clock says and what the
// clock's Uptime (the process's monotonic clock, see Uptimer) says since the
// count was last advanced in this process: a wall clock stepped forward (an
// RTC that booted in 1970, then NTP; an RTC set years ahead) forgives and
// refills nothing. A wall clock set back credits nothing and counts again
// from the step, so a closure never ends more than LockoutRefill after it.
// Across a restart the tarpit counts again from the start (the time a box was
// off is not known to have passed: a power cycle forgives nothing, and loses
// what was served of the current 15 min); the budget is credited the time
// off only on a trusted clock and at most one refill, so that a box that
// reboots more often than every 60 h still refills, and a closure still ends
// when it said. On an untrusted clock a closure ends LockoutRefill of running
// after boot. Limit: someone who can power-cycle the box and step its trusted
// clock forward while it is off gains one refill per power cycle.
//
// The bounds, with the defaults (Config computes them for any config; the
// tests check them against guessers at the keypad):
//
//   - Codes checked in any span d, for anyone, however they time them:
//     GuessBound(d) = min(MaxGuesses(d), BudgetGuesses(d)), per restore. The
//     tarpit's MaxGuesses is 9 + 96 + 288 + 2 = 395 a day: a checked wrong
//     code either raises the count by one (at most 9 times, plus once per
//     decay step: 1440/15 + 1 = 97 a day) or finds it at its cap and so came
//     at least 5 min after the code before it (at most 1440/5 + 1 = 289). A
//     guesser who types each code the moment it is admitted gets 295
//     (GreedyGuesses). The budget's BudgetGuesses is LockoutBudget +
//     floor(d/LockoutRefill): 20 a day, 166 a year. So 20 codes a day and 166
//     a year is all anyone gets checked, a driver with a good code included
//     (nothing but time forgives). Against 100 live 6-digit PINs that is a
//     0.2% chance of a hit in a day and 1.7% in a year; against 12 4-digit
//     driver codes (MinCodeLength), 2.4% and 18%: give drivers 6 digits.
//   - Longest a driver is kept out: by the tarpit, a code is checked at most
//     LockoutMax (5 min) after the last code anyone typed; by the budget, at
//     most LockoutRefill (60 h) after it was spent, and at once when the
//     admin restores it. Limit: someone who comes back after each refill and
//     types a wrong code closes it again (each closure is reported); someone
//     standing at the keypad can keep others from typing at all. That is what
//     the alerts are for.
//
// The lockout advances in memory whatever the store does: if the write that
// records a wrong code fails (SD card full or failing), the keypad is locked
// out (and the budget spent) all the same, and the lockout is written with
// the next commit that works, or by a retry every 5 s. Only a power cut while
// the card refuses writes loses it.
//
// # Who is told of a guesser, and when
//
// keypad_attack is an event the link sends to the cloud at once; the bridge
// mails (or texts) Options.Admin, the first message at once and then at most
// one per 15 min per box, the wrong codes meanwhile added to it
// (sync/bookings, "Alerts to the admin"). The box raises it in two ways:
//
//   - Fast: AttackThreshold (8) failed codes, wrong or typed during a wait,
//     within AttackWindow (10 min); Count is those codes. At most once per
//     window. A guesser at the greedy pace (each code the moment it is
//     admitted) is reported at their 8th code, 3.5 min in (WithDefaults
//     refuses a threshold such a guesser would never reach within the
//     window); someone hammering the keypad, once per window.
//   - Patient: a wrong code that leaves the count of wrong codes at its cap
//     (9): wrong codes have come faster than the decay forgives them, however
//     slowly. At most once per AttackRepeat (1 h) since the last alert of
//     either kind; Count is the failed codes since that alert, Failures the
//     count (kept across restarts, so a restart does not hide a guesser). A
//     guesser who keeps under the fast alert's threshold (never 8 codes in
//     10 min) but otherwise types the moment a code is admitted reaches the
//     cap at their 9th code, about 14 min in, and is reported then.
//
// Either guesser is then reported again at their first wrong code an hour or
// more after the last alert: every hour while they keep going (24 alerts in a
// day of greedy or patient guessing, about 295 wrong codes; the tests check
// these times over a simulated day). A guesser who never lets the count
// reach its cap (and keeps under the fast threshold) raises no
// keypad_attack: one wrong code per decay step at most, after the first 8.
// The budget reports them all the same: their 20th wrong code since the
// budget was last full closes the keypad, and keypad_closed is told to the
// admin at once (sync/bookings), with the time it reopens and the
// restore-keypad command. Limit: a guesser who keeps under both alerts and
// never spends the budget's last code (19 wrong codes, slowly, then one per
// refill) is never reported; they get at most BudgetGuesses - 1 codes
// checked, 165 a year. The fast alert's memory of recent
// codes does not survive a restart (the counts do).
//
// # Refusals are merged
//
// Every refused code, unknown fob or refused return is an event, and an
// offline box must not be pushed towards a full SD card by them. Within
// RefusalWindow (1 min) of a refusal, further refusals of the same kind (type,
// reason, and the grant, slot or key they name; not the fob UID) are counted,
// not recorded: when the window closes, or at stop, one refusals_merged event
// records them, with Count, the same Reason, GrantID, Slot and KeyID, and the
// merged events' type as its Detail. So each kind costs at most two events a
// minute. Merged like refusals, because they too cost nothing to repeat:
//   - a good code that opens nothing (its keys are out, or their slots busy
//     or resting): its code_accepted and key_absent events, per grant;
//   - the slot_relocked (reason timeout) of a slot released for a code or a
//     fob in which nothing moved (see "Slots released for nothing").
//
// A good code that opens a slot records code_accepted and slot_released
// unmerged. The lockout is still written at every wrong code (a commit with
// no event). key_taken, key_returned, slot_released, the other slot_relocked,
// slot_unexpected, lockout, keypad_attack and hardware_fault are never
// merged. (The store's outbox quota merges by EventType.Refusal, which
// includes code_accepted and key_absent but not slot events.)
//
// # Slots released for nothing
//
// A slot released for a code or a fob whose key does not move (the fob of a
// key that is out, or a clone of it; a good code whose driver leaves the key
// in) would otherwise be released again at once, every ReleaseTime: its coil
// energised back to back and two events per release. So after such a release
// times out, the second in a row and every one after it, the slot rests: it
// is not released for a code or a fob for ReleaseCoolBase (10 s) after the
// second, doubling per further fruitless release in a row, up to
// ReleaseCoolMax (5 min, from the 7th). A release refused while the slot
// rests is a refusal (key_absent or return_refused, reason cool_down, Until
// the end of the rest), merged as above. A key moving in the slot (taken,
// returned, or pulled or pushed while locked) ends the rest and the count:
// a driver who opens, takes, returns and opens again is never held back, and
// a return by fob works right after a take; one who was too slow to take their
// key tries again at once, and waits 10 s only if too slow again. Bounds, for
// one slot played with all day: 17 releases in the first hour, 12 an hour after that (24 slot events), and the coil
// energised at most ReleaseTime per ReleaseTime + 5 min (1.6% with the default
// 5 s; the test measures 2.4% over the first hour). A signed command from the
// cloud (remote release) is never held back, nor counted.
//
// # Returns and the key sensor
//
// An EM4100 fob is cloned with a ten-euro tool, so a fob return is weak
// evidence. When a key is seated in a slot released for its return, the slot
// relocks at once (the safe move never waits) and slot_relocked is recorded;
// key_returned waits until the slot's key sensor has seen the key seated for
// ReturnSettle (2 s). It says ReturnBy (fob, or remote for a slot opened by
// a signed command) and SeatedMS: how long the sensor saw a key seated before
// the event was recorded, stamped with the time it was seated. If the sensor
// goes absent first, the box stops, or the slot is released again, key_returned
// is recorded then, with the SeatedMS actually seen (less than the settle), and
// the cloud does not trust it. Limit: the settle only removes the quick fake
// (touch the sensor, pull away). A cloned fob plus any object that presses
// the sensor for the settle time (2 s) looks returned, even if it is pulled
// out right after: the box then records only slot_unexpected ("key removed
// from a locked slot"). What the cloud makes of that is sync/bookings's answer
// (see its doc.go, "A fob alone is weak evidence").
package box
