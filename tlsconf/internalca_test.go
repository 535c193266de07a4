package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func caFiles(dataDir string) (dir, crt, key string) {
	dir = filepath.Join(dataDir, "ca")
	return dir, filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key")
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestLoadOrCreateCAFirstStart(t *testing.T) {
	data := t.TempDir()
	ca, err := LoadOrCreateCA(data)
	if err != nil {
		t.Fatal(err)
	}
	dir, crt, key := caFiles(data)
	if ca.RootPath() != crt {
		t.Errorf("RootPath = %q, want %q", ca.RootPath(), crt)
	}
	if runtime.GOOS != "windows" {
		if m := mode(t, dir); m != 0o700 {
			t.Errorf("ca dir mode %v, want 0700", m)
		}
		if m := mode(t, key); m != 0o600 {
			t.Errorf("root.key mode %v, want 0600", m)
		}
	}
	onDisk, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, ca.RootPEM()) {
		t.Error("RootPEM differs from root.crt")
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("ca dir holds %v, want only root.crt and root.key", names)
	}

	root := ca.cert
	if !root.IsCA || !root.BasicConstraintsValid || root.MaxPathLen != 0 || !root.MaxPathLenZero {
		t.Errorf("root basic constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", root.IsCA, root.BasicConstraintsValid, root.MaxPathLen, root.MaxPathLenZero)
	}
	if root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("root lacks keyCertSign")
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if !strings.HasPrefix(root.Subject.CommonName, "hoplite Local Authority - ") || !strings.HasSuffix(root.Subject.CommonName, " ECC Root") {
		t.Errorf("root CN = %q", root.Subject.CommonName)
	}
	if life := root.NotAfter.Sub(root.NotBefore); life < 3650*24*time.Hour || life > 3654*24*time.Hour {
		t.Errorf("root lifetime %v, want 10 years", life)
	}
	if root.SerialNumber.Sign() <= 0 || root.SerialNumber.BitLen() > 128 {
		t.Errorf("root serial %v", root.SerialNumber)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if _, err := root.Verify(x509.VerifyOptions{Roots: ca.RootPool()}); err != nil {
		t.Errorf("root does not verify against RootPool: %v", err)
	}
}

func TestLoadOrCreateCAReusesRoot(t *testing.T) {
	data := t.TempDir()
	first, err := LoadOrCreateCA(data)
	if err != nil {
		t.Fatal(err)
	}
	_, _, key := caFiles(data)
	keyBefore, _ := os.ReadFile(key)
	second, err := LoadOrCreateCA(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.RootPEM(), second.RootPEM()) {
		t.Error("second start produced a different root")
	}
	if keyAfter, _ := os.ReadFile(key); !bytes.Equal(keyBefore, keyAfter) {
		t.Error("second start rewrote root.key")
	}
}

// TestLoadOrCreateCAConcurrent races many first starts on one directory;
// there is no in-process lock, so this is the same file-level race as
// several processes (see also TestLoadOrCreateCAProcesses).
func TestLoadOrCreateCAConcurrent(t *testing.T) {
	for round := range 5 {
		data := t.TempDir()
		const n = 16
		pems := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				ca, err := LoadOrCreateCA(data)
				errs[i] = err
				if err == nil {
					pems[i] = ca.RootPEM()
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: start %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(pems[i], pems[0]) {
				t.Fatalf("round %d: start %d got a different root", round, i)
			}
		}
		// And the files on disk are that root and its key.
		again, err := LoadOrCreateCA(data)
		if err != nil {
			t.Fatalf("round %d: reload: %v", round, err)
		}
		if !bytes.Equal(again.RootPEM(), pems[0]) {
			t.Fatalf("round %d: root on disk differs from the one handed out", round)
		}
	}
}

const caHelperEnv = "HOPLITE_TLSCONF_CA_HELPER_DIR"

// TestLoadOrCreateCAProcesses starts several real processes (this test
// binary, re-executed) on one fresh data directory at once.
func TestLoadOrCreateCAProcesses(t *testing.T) {
	if dir := os.Getenv(caHelperEnv); dir != "" {
		ca, err := LoadOrCreateCA(dir)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		sum := sha256.Sum256(ca.RootPEM())
		fmt.Println("ROOT", hex.EncodeToString(sum[:]))
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	data := t.TempDir()
	const n = 4
	cmds := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range n {
		cmds[i] = exec.Command(exe, "-test.run=^TestLoadOrCreateCAProcesses$")
		cmds[i].Env = append(os.Environ(), caHelperEnv+"="+data)
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = &outs[i]
	}
	for i := range n {
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	var roots []string
	for i := range n {
		err := cmds[i].Wait()
		out := outs[i].String()
		if err != nil {
			t.Fatalf("process %d: %v: %s", i, err, out)
		}
		_, line, ok := strings.Cut(out, "ROOT ")
		if !ok {
			t.Fatalf("process %d: no ROOT line: %s", i, out)
		}
		roots = append(roots, strings.Fields(line)[0])
	}
	ca, err := LoadOrCreateCA(data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca.RootPEM())
	want := hex.EncodeToString(sum[:])
	for i, r := range roots {
		if r != want {
			t.Errorf("process %d used root %s, disk has %s", i, r, want)
		}
	}
}

// A crash between publishing the key and the certificate leaves a key
// alone; the next start completes the pair with that same key.
func TestLoadOrCreateCAKeyWithoutCert(t *testing.T) {
	data := t.TempDir()
	first, err := LoadOrCreateCA(data)
	if err != nil {
		t.Fatal(err)
	}
	_, crt, _ := caFiles(data)
	if err := os.Remove(crt); err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreateCA(data)
	if err != nil {
		t.Fatal(err)
	}
	if !second.cert.PublicKey.(*ecdsa.PublicKey).Equal(first.cert.PublicKey) {
		t.Error("new root certificate is not for the existing key")
	}
}

func TestLoadOrCreateCATightensModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes")
	}
	data := t.TempDir()
	if _, err := LoadOrCreateCA(data); err != nil {
		t.Fatal(err)
	}
	dir, _, key := caFiles(data)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(data); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("ca dir mode %v, want 0700", m)
	}
	if m := mode(t, key); m != 0o600 {
		t.Errorf("root.key mode %v, want 0600", m)
	}
}

func TestLoadOrCreateCAErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, data string) // after a first successful start
		now   time.Time
		want  []string
		// keyMustNotExist: the failing start must not have created a key.
		keyMustNotExist bool
	}{
		{
			name: "cert without key",
			setup: func(t *testing.T, data string) {
				_, _, key := caFiles(data)
				os.Remove(key)
			},
			want:            []string{"root.crt exists but", "root.key is missing"},
			keyMustNotExist: true,
		},
		{
			name: "corrupt key",
			setup: func(t *testing.T, data string) {
				_, _, key := caFiles(data)
				os.WriteFile(key, []byte("junk"), 0o600)
			},
			want: []string{"tlsconf: internal CA: read ", "root.key", "no PRIVATE KEY block"},
		},
		{
			name: "corrupt cert",
			setup: func(t *testing.T, data string) {
				_, crt, _ := caFiles(data)
				os.WriteFile(crt, []byte("junk"), 0o644)
			},
			want: []string{"tlsconf: internal CA: read ", "root.crt", "no CERTIFICATE block"},
		},
		{
			name: "key from another CA",
			setup: func(t *testing.T, data string) {
				other := t.TempDir()
				if _, err := LoadOrCreateCA(other); err != nil {
					t.Fatal(err)
				}
				_, _, otherKey := caFiles(other)
				_, _, key := caFiles(data)
				b, _ := os.ReadFile(otherKey)
				os.WriteFile(key, b, 0o600)
			},
			want: []string{"root.key does not match root", "root.crt"},
		},
		{
			name: "root is not a CA",
			setup: func(t *testing.T, data string) {
				pki := newTestPKI(t)
				_, crt, key := caFiles(data)
				os.WriteFile(crt, certPEM(pki.leafCert), 0o644)
				os.WriteFile(key, pkcs8PEM(t, pki.leafKey), 0o600)
			},
			want: []string{"root.crt is not a CA certificate"},
		},
		{
			name:  "expired root",
			setup: func(t *testing.T, data string) {},
			now:   time.Now().AddDate(11, 0, 0),
			want:  []string{"root.crt expired on", "to create a new root"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			if _, err := LoadOrCreateCA(data); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, data)
			now := tt.now
			if now.IsZero() {
				now = time.Now()
			}
			_, err := loadOrCreateCA(data, now)
			if err == nil {
				t.Fatal("loadOrCreateCA succeeded, want error")
			}
			if !strings.HasPrefix(err.Error(), "tlsconf: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.keyMustNotExist {
				_, _, key := caFiles(data)
				if _, err := os.Stat(key); err == nil {
					t.Error("a failing start created a root key that cannot match the certificate")
				}
			}
		})
	}
}

func TestLoadOrCreateCANeedsDataDir(t *testing.T) {
	_, err := LoadOrCreateCA("")
	if err == nil || err.Error() != "tlsconf: internal CA needs a data directory" {
		t.Fatalf("err = %v", err)
	}
}
