package main

import (
	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newKlogLogger returns a logr.Logger writing to log, for klog.SetLogger:
// client-go's own messages become JSON lines like ours. klog's info level 0
// is logged as info, higher verbosity as debug.
func newKlogLogger(log *zap.Logger) logr.Logger {
	return logr.New(&zapSink{log: log.WithOptions(zap.AddCallerSkip(1))})
}

type zapSink struct {
	log *zap.Logger
}

func (s *zapSink) Init(logr.RuntimeInfo) {}

func (s *zapSink) Enabled(level int) bool {
	if level > 0 {
		return s.log.Core().Enabled(zapcore.DebugLevel)
	}
	return s.log.Core().Enabled(zapcore.InfoLevel)
}

func (s *zapSink) Info(level int, msg string, kv ...any) {
	if level > 0 {
		s.log.Debug(msg, fields(kv)...)
		return
	}
	s.log.Info(msg, fields(kv)...)
}

func (s *zapSink) Error(err error, msg string, kv ...any) {
	s.log.Error(msg, append(fields(kv), zap.Error(err))...)
}

func (s *zapSink) WithValues(kv ...any) logr.LogSink {
	return &zapSink{log: s.log.With(fields(kv)...)}
}

func (s *zapSink) WithName(name string) logr.LogSink {
	return &zapSink{log: s.log.Named(name)}
}

func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = "key"
		}
		out = append(out, zap.Any(key, kv[i+1]))
	}
	return out
}
