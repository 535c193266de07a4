// Command hoplite is a protocol-translating HTTP front proxy: it serves
// HTTP/1.1, HTTP/2 and HTTP/3 clients and forwards to HTTP/1.1 origins over
// pooled persistent connections.
//
// Usage:
//
//	hoplite run      [--config FILE] [--data DIR]
//	hoplite proxy    --from HOST[:PORT] --to URL [--to URL ...] [--cert FILE --key FILE]
//	                 [--acme-ca URL] [--acme-email ADDR] [--acme-root FILE] [--admin ADDR] [--data DIR]
//	hoplite validate --config FILE
//	hoplite origin   [--listen ADDR]
//	hoplite ca       [--data DIR]
//	hoplite version
//
// This package is wiring only: flags, the config file, signals and the
// admin endpoint. The protocol work lives in frontend, translate, backend
// and tlsconf.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `hoplite: a protocol-translating HTTP front proxy (h1, h2, h3 → HTTP/1.1)

Usage:
  hoplite run      [--config FILE] [--data DIR]
        serve from a config file (default: a built-in config that proxies
        https://localhost:8443 to the demo origin at 127.0.0.1:9080)
  hoplite proxy    --from HOST[:PORT] --to URL [--to URL ...]
                   [--cert FILE --key FILE] [--admin ADDR] [--data DIR]
                   [--acme-ca URL] [--acme-email ADDR] [--acme-root FILE]
        serve one route "/" to the --to servers, without a config file;
        a public DNS name in --from gets a certificate over ACME (Let's
        Encrypt unless --acme-ca says otherwise) on :443 and :80
  hoplite validate --config FILE
        check a config file without binding anything or contacting a CA
  hoplite origin   [--listen ADDR]
        run a small HTTP/1.1 echo origin (default 127.0.0.1:9080)
  hoplite ca       [--data DIR]
        print the internal CA root certificate (PEM) for clients to trust
  hoplite version
        print the version

The data directory (internal CA, ACME storage) defaults to $HOPLITE_DATA,
else $XDG_DATA_HOME/hoplite, else ~/.local/share/hoplite.
Run "hoplite COMMAND -h" for a command's flags.
`

// cli carries the process environment so commands can be tested.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	home           func() (string, error)
	// signals delivers SIGINT and SIGTERM to a running server, and hups
	// SIGHUP (reload); with signals nil, both subscribe to the process's
	// signals.
	signals, hups <-chan os.Signal
}

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, home: os.UserHomeDir}
	os.Exit(c.main(os.Args[1:]))
}

// main runs one command and returns the exit status: 0 success, 1 failure,
// 2 usage error.
func (c *cli) main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return c.runCmd(args)
	case "proxy":
		return c.proxyCmd(args)
	case "validate":
		return c.validateCmd(args)
	case "origin":
		return c.originCmd(args)
	case "ca":
		return c.caCmd(args)
	case "version":
		return c.versionCmd(args)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stderr, usage)
		return 2
	default:
		fmt.Fprintf(c.stderr, "hoplite: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// flags returns a FlagSet for a subcommand that reports to stderr.
func (c *cli) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("hoplite "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: hoplite %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. It returns -1 to go on, or the exit status:
// 0 after -h, 2 after a bad flag or a stray argument.
func (c *cli) parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2
	}
	return -1
}

// signalChan returns the channels that deliver shutdown signals (SIGINT,
// SIGTERM) and reload signals (SIGHUP). They are separate so that a burst
// of SIGHUPs cannot fill the buffer a SIGTERM needs (package signal drops
// what does not fit); one pending SIGHUP is enough, since a reload reads
// the file as it is then. Without reload, SIGHUP keeps its default
// action and hups is nil.
func (c *cli) signalChan(reload bool) (sigs, hups <-chan os.Signal, stop func()) {
	if c.signals != nil {
		return c.signals, c.hups, func() {}
	}
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	if !reload {
		return ch, nil, func() { signal.Stop(ch) }
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return ch, hup, func() { signal.Stop(ch); signal.Stop(hup) }
}

func (c *cli) dataDir(flagDir, configDir string) (string, error) {
	return resolveDataDir(flagDir, configDir, c.getenv, c.home)
}
