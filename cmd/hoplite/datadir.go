package main

import (
	"errors"
	"path/filepath"
)

// resolveDataDir picks hoplite's data directory (the internal CA lives
// there): the --data flag, else the config's data_dir, else $HOPLITE_DATA,
// else $XDG_DATA_HOME/hoplite, else ~/.local/share/hoplite. The XDG Base
// Directory spec says a relative $XDG_DATA_HOME is invalid and must be
// ignored.
func resolveDataDir(flagDir, configDir string, getenv func(string) string, home func() (string, error)) (string, error) {
	for _, d := range []string{flagDir, configDir, getenv("HOPLITE_DATA")} {
		if d != "" {
			return d, nil
		}
	}
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "hoplite"), nil
	}
	h, err := home()
	if err != nil || h == "" {
		return "", errors.New("no data directory: set --data, data_dir, $HOPLITE_DATA or $HOME")
	}
	return filepath.Join(h, ".local", "share", "hoplite"), nil
}
