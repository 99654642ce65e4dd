// Package tomlconf is the strict TOML reading smartboxd and smartbox-bridge
// share for their config files: errors that say "file:line: field: what is
// wrong", unknown keys refused, and durations that must carry a unit.
//
// A technician edits these files on a box over SSH; a message that names the
// line saves a hunt through the file, and a misspelt key that was silently
// ignored would leave a default in force that nobody chose.
//
// # Caveats
//
// toml's MetaData has no public positions for keys, so FindKeyLine scans the
// source itself. It understands what the example configs use (tables, arrays
// of tables, dotted and quoted keys), not every corner of TOML: a key it
// cannot place gets a message without a line, never a wrong line number on
// purpose.
package tomlconf
