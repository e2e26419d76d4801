// Command llm runs large language models in process: it pulls them from the
// Hugging Face Hub, inspects, converts and benchmarks them, and generates text
// with llama.cpp linked into the binary. Run "llm help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// command is one subcommand of llm. Each lives in its own file and adds itself
// to the table with register from an init function.
type command struct {
	name    string // what the user types
	usage   string // arguments after the name, for the usage line
	summary string // one line for "llm help"
	run     func(ctx context.Context, io *stdio, args []string) error
}

// stdio carries the streams a command reads and writes, so tests can run
// commands in process.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("llm: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// usageError is a mistake in how a command was called. It exits with status 2
// and a one-line reason.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlags returns a flag set for command name with the flags every command
// shares (--verbose). Parse errors are returned, never printed twice or exited on.
func newFlags(name string, verbose *bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.BoolVarP(verbose, "verbose", "v", false, "log llama.cpp and timing details to stderr")
	return fs
}

// llamaSpellings maps llama.cpp's multi-letter single-dash flags, which
// pflag would read as bundled one-letter flags, to ours.
var llamaSpellings = map[string]string{
	"-ngl": "--ngl", "-fa": "--flash-attn", "-ctk": "--cache-type-k", "-ctv": "--cache-type-v",
	"-sm": "--split-mode", "-mg": "--main-gpu", "-ts": "--tensor-split", "-nr": "--no-repack",
}

// translateLlamaFlags rewrites llama.cpp spellings such as "-ngl 99" or
// "-ctk=q8_0" to their long forms, up to a "--" that ends the flags.
func translateLlamaFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		if long, ok := llamaSpellings[name]; ok {
			if hasValue {
				a = long + "=" + value
			} else {
				a = long
			}
		}
		out[i] = a
	}
	return out
}

// parseFlags parses args into fs, turning pflag's errors into usage errors and
// printing the flag help for --help.
func parseFlags(fs *pflag.FlagSet, cmd *command, sio *stdio, args []string) error {
	if err := fs.Parse(translateLlamaFlags(args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(sio.out, "usage: llm %s %s\n\n%s\n\n%s", cmd.name, cmd.usage, cmd.summary, fs.FlagUsages())
			return errHelpShown
		}
		return usagef("%s: %v", cmd.name, err)
	}
	return nil
}

// errHelpShown ends a command successfully after --help printed its usage.
var errHelpShown = errors.New("help shown")

// setupLogging sends log/slog output (including llama.cpp's log, which the
// engine routes into slog) to stderr: warnings and errors normally, everything
// with --verbose.
func setupLogging(w io.Writer, verbose bool) {
	level := slog.LevelError
	if verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// runMain runs the command named by args[0] and returns the exit status:
// 0 success, 1 failure, 2 usage error.
func runMain(ctx context.Context, sio *stdio, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return runMain(ctx, sio, []string{c.name, "--help"})
			}
		}
		printHelp(sio.out)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(sio.err, "llm: unknown command %q (run \"llm help\")\n", args[0])
		return 2
	}
	err := c.run(ctx, sio, args[1:])
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(sio.err, "llm %s: %s\n", c.name, strings.TrimPrefix(ue.msg, c.name+": "))
		return 2
	default:
		fmt.Fprintf(sio.err, "llm %s: %v\n", c.name, err)
		return 1
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "llm runs large language models in process.")
	fmt.Fprintln(w, "\nusage: llm COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"llm help COMMAND\" for a command's flags.")
}
