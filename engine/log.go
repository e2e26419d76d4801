package engine

/*
#include "llama_api.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

var (
	logger atomic.Pointer[slog.Logger]

	logMu    sync.Mutex
	logLine  strings.Builder // a line llama.cpp has not finished yet
	logLevel slog.Level      // the level of logLine
	logKeep  bool            // whether logLine is being kept
	errLines []string        // error lines llama.cpp logged since takeLastError
)

// SetLogger sets where llama.cpp's and ggml's log lines go. A nil logger
// means slog.Default() at the time of each line. Lines are logged with the
// attribute source=llama.cpp at these levels: its debug and info lines at
// Debug, its warnings at Info and its errors at Warn. Errors are reported
// again, with llama.cpp's reason, by the Go error of the failing call.
func SetLogger(l *slog.Logger) { logger.Store(l) }

func currentLogger() *slog.Logger {
	if l := logger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

func slogLevel(level C.int) slog.Level {
	switch level {
	case C.GGML_LOG_LEVEL_ERROR:
		return slog.LevelWarn
	case C.GGML_LOG_LEVEL_WARN:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

//export llmGoLog
func llmGoLog(level C.int, text *C.char) {
	logMu.Lock()
	defer logMu.Unlock()
	if level != C.GGML_LOG_LEVEL_CONT {
		flushLogLine()
		logLevel = slogLevel(level)
		logKeep = level == C.GGML_LOG_LEVEL_ERROR ||
			currentLogger().Enabled(context.Background(), logLevel)
	}
	if !logKeep {
		return
	}
	s := C.GoString(text)
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			logLine.WriteString(s)
			return
		}
		logLine.WriteString(s[:i])
		flushLogLine()
		s = s[i+1:]
	}
}

// flushLogLine emits the pending line. logMu must be held.
func flushLogLine() {
	if logLine.Len() == 0 {
		return
	}
	msg := strings.TrimSpace(logLine.String())
	logLine.Reset()
	if msg == "" {
		return
	}
	if logLevel == slog.LevelWarn && len(errLines) < 8 {
		errLines = append(errLines, msg)
	}
	currentLogger().Log(context.Background(), logLevel, msg, "source", "llama.cpp")
}

// takeLastError returns and forgets the error lines llama.cpp logged since
// the previous call, joined by "; ". llama.cpp reports why a load or decode
// failed only in its log; the first lines carry the reason.
func takeLastError() string {
	logMu.Lock()
	defer logMu.Unlock()
	flushLogLine()
	s := strings.Join(errLines, "; ")
	errLines = errLines[:0]
	return s
}
