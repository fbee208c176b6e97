// Command protows is the command-line tool of protows, as grpcurl is
// gRPC's: it lists and describes the services of a server, calls their
// methods with JSON requests, listens to server streams, and decodes
// captured frames.
//
//	protows list ws://127.0.0.1:8080/ws
//	protows describe ws://127.0.0.1:8080/ws examples.chat.v1.ChatService
//	protows call --token "$TOKEN" ws://127.0.0.1:8080/ws /examples.chat.v1.ChatService/Send '{"room":"lobby","text":"hi"}'
//	protows listen --token "$TOKEN" ws://127.0.0.1:8080/ws /examples.chat.v1.ChatService/Watch '{"room":"lobby"}'
//	protows decode CiAIChABHd00VjkqFQoTY2hhdC52MS5DaGF0U2VydmljZQ==
//
// It learns the methods and messages of a server through server reflection
// (the reflection package: servers opt in), or, for servers without it,
// from a descriptor set (--descriptor-set, the output of
// `buf build -o set.binpb`) or from .proto files (--proto, compiled by
// running `buf build`, which must be on PATH).
//
// Run `protows help` for the commands and `protows COMMAND --help` for the
// flags of each. Exit status: 0 on success; 1 for an error of the tool
// itself (a file that does not read, a request that is not valid JSON for
// its message, a method the descriptors do not have); 2 for a usage error;
// 64 + the error code when a call fails (the server's error, or the
// client's: 78 = 64 + unavailable when the server cannot be reached), after
// printing "code: message" to standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	protows "github.com/protows/protows"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitCode is added to the protows error code of a failed call.
	exitCode = 64
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	status := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(status)
}

// env is what a run of the command reads and writes, so that tests run it
// in process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// buf is the buf executable that compiles --proto files; empty means
	// "buf" on PATH.
	buf string
}

// command is one subcommand.
type command struct {
	name    string
	args    string // the positional arguments, for the usage line
	summary string
	help    string // what it does, at length
	// flags defines the command's flags on fs and returns the function
	// that runs the command once they are parsed.
	flags func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command with its positional arguments and returns the
// exit status.
type runFunc func(ctx context.Context, e *env, args []string) int

// exec parses args and runs c.
func (c *command) exec(ctx context.Context, e *env, args []string) int {
	fs := c.flagSet(e.stderr)
	runc := c.flags(fs)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(e.stdout)
		return exitOK
	}
	if err != nil {
		// The flag package has printed the error.
		fmt.Fprintf(e.stderr, "usage: protows %s [flags] %s (protows %s --help for more)\n", c.name, c.args, c.name)
		return exitUsage
	}
	return runc(ctx, e, pos)
}

func (c *command) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("protows "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {} // exec prints the usage itself, on stdout for --help
	return fs
}

// usage writes c's help and flags to w.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: protows %s [flags] %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.help))
	fs := c.flagSet(w)
	c.flags(fs)
	fmt.Fprintln(w, "\nflags:")
	fs.PrintDefaults()
}

func commands() []*command {
	return []*command{listCommand(), describeCommand(), callCommand(), listenCommand(), decodeCommand()}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run runs the command line args (without the program name) and returns
// the exit status.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			c := findCommand(args[1])
			if c == nil {
				fmt.Fprintf(e.stderr, "protows: unknown command %q\n", args[1])
				return exitUsage
			}
			c.usage(e.stdout)
			return exitOK
		}
		usage(e.stdout)
		return exitOK
	}
	c := findCommand(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "protows: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return exitUsage
	}
	return c.exec(ctx, e, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `protows talks to protows servers: typed, Protobuf-framed messaging over WebSocket.

usage: protows COMMAND [flags] ARGS

commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "protows COMMAND --help" (or "protows help COMMAND") for its arguments
and flags. Flags may come before or after the arguments; "--" ends them.

The methods and messages of a server come from its reflection service
(servers opt in), or from --descriptor-set FILE (buf build -o FILE) or
--proto FILE.proto (compiled with buf build, buf on PATH).

exit status:
  0        success
  1        an error of the tool (a file, a request that does not fit its message)
  2        usage error
  64+code  the call failed with that protows error code ("code: message" on
           standard error), e.g. 69 not_found, 76 unimplemented,
           78 unavailable (server unreachable), 80 unauthenticated
`)
}

// fail reports err and returns the exit status it calls for: a protows
// error (the server's, or the client's, like unavailable) as "code:
// message" and 64 + its code, anything else as an error of the tool.
func (e *env) fail(err error) int {
	var perr *protows.Error
	if errors.As(err, &perr) {
		if msg := perr.Message(); msg != "" {
			fmt.Fprintf(e.stderr, "%s: %s\n", perr.Code(), msg)
		} else {
			fmt.Fprintf(e.stderr, "%s\n", perr.Code())
		}
		return exitCode + int(perr.Code())
	}
	fmt.Fprintf(e.stderr, "protows: %v\n", err)
	return exitFailure
}

// usageError reports a usage error of c.
func (e *env) usageError(c *command, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "protows %s: %s\n", c.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(e.stderr, "usage: protows %s [flags] %s (protows %s --help for more)\n", c.name, c.args, c.name)
	return exitUsage
}
