package tlsconf

import (
	"context"
	"log/slog"

	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core writing to a slog.Handler: certmagic (and
// acmez, through zap's slog bridge) log with zap, hoplite with slog. A
// record carries the zap logger's name as "logger" ("certmagic.obtain"),
// then the fields added with With, then the entry's own fields.
//
// Each field becomes one attribute with the value zap's map encoder gives
// it (strings, numbers, durations, times, []any for arrays, map[string]any
// for objects; an error becomes its message). Namespaces are dropped, as
// are caller and stack (certmagic only sets a stack for panics, which it
// also logs as a field).
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr // from With
}

func newSlogCore(h slog.Handler) zapcore.Core { return &slogCore{h: h} }

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	if len(fields) == 0 {
		return c
	}
	return &slogCore{h: c.h, attrs: append(c.attrs[:len(c.attrs):len(c.attrs)], fieldAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (*slogCore) Sync() error { return nil }

// slogLevel maps zap's levels onto slog's four; DPanic, Panic and Fatal
// are errors.
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l < zapcore.InfoLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		if f.Type == zapcore.SkipType || f.Type == zapcore.NamespaceType {
			continue
		}
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		// An error field may add "<key>Verbose" too; only the key counts.
		if v, ok := enc.Fields[f.Key]; ok {
			attrs = append(attrs, slog.Any(f.Key, v))
		}
	}
	return attrs
}
