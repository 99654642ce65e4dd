// Package boxconfig is smartboxd's config file (TOML): its fields, their
// defaults, their validation, and the [cloud] table's credential files. It
// is one definition for the daemon that runs on it and the technician's
// tool (smartboxctl) that writes, checks and diagnoses it.
//
// ParseConfig decodes strictly (an unknown key is an error naming its line)
// and fills defaults; Validate checks every field before anything touches
// hardware or the store; Credentials reads the files [cloud] names, relative
// to the config file's directory. The documented example of every field is
// cmd/smartboxd/smartboxd.example.toml.
package boxconfig
