package tlsconf

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestSlogCore(t *testing.T) {
	var b syncBuffer
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	})
	core := newSlogCore(h)
	z := zap.New(core).Named("certmagic")

	if core.Enabled(zapcore.DebugLevel) || !core.Enabled(zapcore.InfoLevel) {
		t.Error("Enabled does not follow the handler's level")
	}
	z.Debug("hidden", zap.String("k", "v"))
	z.Named("obtain").Info("obtaining certificate", zap.String("identifier", "a.test"), zap.Int("attempt", 2),
		zap.Duration("retrying_in", time.Minute), zap.Strings("sans", []string{"a.test", "b.test"}), zap.Bool("ok", true))
	w := z.With(zap.String("ca", "https://ca.test/dir"))
	w.Warn("warned", zap.Error(errors.New("boom")))
	w.With(zap.String("remote", "1.2.3.4")).Error("failed", zap.Skip(), zap.Namespace("ns"), zap.String("after", "x"))
	z.DPanic("dpanic") // not in development mode: logs at error level only

	want := `level=INFO msg="obtaining certificate" logger=certmagic.obtain identifier=a.test attempt=2 retrying_in=1m0s sans="[a.test b.test]" ok=true
level=WARN msg=warned logger=certmagic ca=https://ca.test/dir error=boom
level=ERROR msg=failed logger=certmagic ca=https://ca.test/dir remote=1.2.3.4 after=x
level=ERROR msg=dpanic logger=certmagic
`
	if got := b.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(b.String(), "hidden") {
		t.Error("debug entry written at info level")
	}
	if err := core.Sync(); err != nil {
		t.Error(err)
	}
	if c := core.With(nil); c != core {
		t.Error("With(nil) made a new core")
	}
}
