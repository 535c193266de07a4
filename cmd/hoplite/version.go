package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

func (c *cli) versionCmd(args []string) int {
	fs := c.flags("version", "")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintln(c.stdout, versionString())
	return 0
}

// versionString is "hoplite VERSION GOVERSION", plus the VCS revision when
// the binary was built with VCS stamping.
func versionString() string {
	version, extra := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = "+dirty"
				}
			}
		}
		if rev != "" {
			extra = fmt.Sprintf(" (%.12s%s)", rev, modified)
		}
	}
	return fmt.Sprintf("hoplite %s%s %s %s/%s", version, extra, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
