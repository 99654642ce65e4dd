// Package cli is the command-line kit that smartboxctl and smartbox-bridge
// share: a subcommand dispatcher with its usage text, usage errors, flag sets
// that say what went wrong, and the "parse the flags, ask, print the answer"
// shape most subcommands have.
//
// # Exit codes
//
// A command exits 0 when it did what was asked (also after -h or help), 1
// when it failed, and 2 when the command line was wrong: an unknown command,
// a flag the command does not have, a value it refuses. Scripts tell a typo
// from a failure by the code, so every mistake on the command line is a
// [UsageError] and nothing else is.
//
// # What is printed
//
// Usage texts, the flag package's messages and errors go to stderr, so that
// stdout carries only the answer a script may read. A failed command prints
// one line, "PROGRAM COMMAND: what went wrong".
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is a mistake on the command line: the command exits 2.
type UsageError struct {
	Msg string
	// Shown says the mistake has been printed already (the flag package
	// prints its own message and the flags; the dispatcher its usage), so
	// nothing more is printed.
	Shown bool
}

func (e UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError that the dispatcher prints.
func Usagef(format string, args ...any) error {
	return UsageError{Msg: fmt.Sprintf(format, args...)}
}

// RunFunc runs a subcommand with the arguments after its name.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Command is one subcommand of a [Set].
type Command struct {
	Name string
	// Summary follows the name in the usage text: the arguments and what
	// the command does. Further lines (after "\n") are indented to the
	// summary's column.
	Summary string
	Run     RunFunc
}

// Set is a program's subcommands (or a subcommand's own, as in
// `smartbox-bridge fleetio link`) and the usage text that lists them.
type Set struct {
	// Name is what errors and the unknown-command message start with,
	// e.g. "smartbox-bridge" or "smartbox-bridge fleetio".
	Name string
	// Header comes before the list of commands, Footer after it.
	Header, Footer string
	// Width is the column of the summaries, counted after the two-space
	// indent; a longer name is followed by one space.
	Width    int
	Commands []Command
}

// Usage is the usage text: Header, a line per command, Footer.
func (s *Set) Usage() string {
	var b strings.Builder
	b.WriteString(s.Header)
	indent := strings.Repeat(" ", 2+s.Width)
	for _, c := range s.Commands {
		first, rest, _ := strings.Cut(c.Summary, "\n")
		fmt.Fprintf(&b, "  %s%s%s\n", c.Name, strings.Repeat(" ", max(s.Width-len(c.Name), 1)), first)
		for line := range strings.SplitSeq(rest, "\n") {
			if line != "" {
				b.WriteString(indent + line + "\n")
			}
		}
	}
	b.WriteString(s.Footer)
	return b.String()
}

func (s *Set) lookup(name string) *Command {
	for i := range s.Commands {
		if s.Commands[i].Name == name {
			return &s.Commands[i]
		}
	}
	return nil
}

// Run runs the command args[0] names and returns its error for the caller
// to report: it is the RunFunc of a Set that is itself a subcommand. With
// no arguments, or with help, -h or --help, it prints the usage; an unknown
// command prints the usage after the name's mistake.
func (s *Set) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	shown := UsageError{Shown: true}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, s.Usage())
		if len(args) == 0 {
			return shown
		}
		return nil
	}
	c := s.lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", s.Name, args[0], s.Usage())
		return shown
	}
	return c.Run(ctx, args[1:], stdout, stderr)
}

// Main is a program's main without the process: it runs the command
// args[0] names, prints its error and returns the exit code.
func (s *Set) Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := s.Run(ctx, args, stdout, stderr)
	name := s.Name
	if len(args) > 0 {
		name += " " + args[0]
	}
	return Exit(err, name, stderr)
}

// Exit is the exit code for err, what a command (or a program without
// subcommands, as smartboxd) returned: 0 for nil or -h, 2 for a
// [UsageError], else 1. An error not printed yet goes to stderr as one line,
// "name: what went wrong".
func Exit(err error, name string, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	code := ExitFailure
	var ue UsageError
	if errors.As(err, &ue) {
		code = ExitUsage
		if ue.Shown {
			return code
		}
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return code
}

// LogLevelUsage is the help text of a --log-level flag.
const LogLevelUsage = "log level: debug, info, warn or error"

// ParseLogLevel reads a --log-level value; a name slog does not know is a
// [UsageError].
func ParseLogLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, Usagef("--log-level %q: want debug, info, warn or error", s)
	}
	return level, nil
}

// FlagSet is a subcommand's flags. It prints its mistakes and -h to the
// stderr it was made with, and its Parse methods return a shown
// [UsageError] for a bad flag and [flag.ErrHelp] for -h, which [Set.Main]
// turns into exit 2 and exit 0.
type FlagSet struct {
	*flag.FlagSet
}

// NewFlagSet makes the flag set of the command name ("smartboxctl init").
func NewFlagSet(name string, stderr io.Writer) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &FlagSet{fs}
}

// parse is flag.FlagSet.Parse with the kit's errors.
func (fs *FlagSet) parse(args []string) error {
	err := fs.FlagSet.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return UsageError{Msg: err.Error(), Shown: true}
}

// Parse parses flags and wants no positional argument. As in the flag
// package, flags end at the first argument that is not one.
func (fs *FlagSet) Parse(args []string) error {
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// Positional parses flags that may come before, between or after
// positional arguments (the flag package stops at the first positional one:
// `link 12 --box b` must work as well as `link --box b 12`) and returns the
// positional arguments.
func (fs *FlagSet) Positional(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ParseArgs is Positional wanting exactly the positional arguments names
// names (none: no positional argument at all).
func (fs *FlagSet) ParseArgs(args []string, names ...string) ([]string, error) {
	pos, err := fs.Positional(args)
	if err != nil {
		return nil, err
	}
	if len(pos) < len(names) {
		return nil, Usagef("missing %s", strings.Join(names[len(pos):], " "))
	}
	if len(pos) > len(names) {
		return nil, Usagef("unexpected argument %q", pos[len(names)])
	}
	return pos, nil
}

// Call is the shape of most subcommands, once their flags are declared on
// fs: parse args, then call, then print call's answer.
//
// Without names, args holds flags only ([FlagSet.Parse]); with names, it
// holds exactly those positional arguments, flags on either side
// ([FlagSet.ParseArgs]), and call gets them. call checks the flags' values
// before it asks anything (a [UsageError] exits 2), then asks: the service,
// a store. print writes the answer.
func Call[T any](fs *FlagSet, args []string, names []string, call func(pos []string) (T, error), print func(T) error) error {
	var pos []string
	var err error
	if len(names) == 0 {
		err = fs.Parse(args)
	} else {
		pos, err = fs.ParseArgs(args, names...)
	}
	if err != nil {
		return err
	}
	answer, err := call(pos)
	if err != nil {
		return err
	}
	return print(answer)
}
