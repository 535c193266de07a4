package main

import (
	"errors"
	"testing"
)

func TestResolveDataDir(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	noHome := func() (string, error) { return "", errors.New("no $HOME") }
	tests := []struct {
		name          string
		flag, config  string
		env           map[string]string
		home          func() (string, error)
		want, wantErr string
	}{
		{"flag wins", "/flag", "/config", map[string]string{"HOPLITE_DATA": "/env", "XDG_DATA_HOME": "/xdg"}, home, "/flag", ""},
		{"config before env", "", "/config", map[string]string{"HOPLITE_DATA": "/env"}, home, "/config", ""},
		{"HOPLITE_DATA", "", "", map[string]string{"HOPLITE_DATA": "/env", "XDG_DATA_HOME": "/xdg"}, home, "/env", ""},
		{"XDG_DATA_HOME", "", "", map[string]string{"XDG_DATA_HOME": "/xdg"}, home, "/xdg/hoplite", ""},
		{"relative XDG_DATA_HOME ignored", "", "", map[string]string{"XDG_DATA_HOME": "rel"}, home, "/home/u/.local/share/hoplite", ""},
		{"home", "", "", nil, home, "/home/u/.local/share/hoplite", ""},
		{"nothing", "", "", nil, noHome, "", "no data directory: set --data, data_dir, $HOPLITE_DATA or $HOME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveDataDir(tt.flag, tt.config, func(k string) string { return tt.env[k] }, tt.home)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("got %q, %v; want %q, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
