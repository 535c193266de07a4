package main

import (
	"fmt"

	"hoplite/tlsconf"
)

// caCmd prints the internal CA's root certificate to stdout and its path to
// stderr, so that "hoplite ca > root.pem" gives clients a file to trust. It
// creates the CA if it does not exist yet, exactly as "hoplite run" would.
func (c *cli) caCmd(args []string) int {
	fs := c.flags("ca", "[--data DIR]")
	data := fs.String("data", "", "data `DIR` holding the internal CA")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	dir, err := c.dataDir(*data, "")
	if err != nil {
		fmt.Fprintln(c.stderr, "hoplite ca:", err)
		return 1
	}
	ca, err := tlsconf.LoadOrCreateCA(dir)
	if err != nil {
		fmt.Fprintln(c.stderr, "hoplite ca:", err)
		return 1
	}
	if _, err := c.stdout.Write(ca.RootPEM()); err != nil {
		fmt.Fprintln(c.stderr, "hoplite ca:", err)
		return 1
	}
	fmt.Fprintln(c.stderr, ca.RootPath())
	return 0
}
