// Package ntpsync says whether the system clock is synchronised by NTP, as
// the kernel knows it (adjtimex's STA_UNSYNC): one definition for smartboxd's
// status (boxsocket.Status.ClockSynced) and smartboxctl doctor's check of a
// stopped box.
package ntpsync
