package router

import (
	"context"
	"log/slog"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// LogCalls returns an interceptor that logs every call when it ends: the
// method, its code ("ok" for a success, see protows.CodeOf), the duration,
// the connection id and, for a failure, the message. Successes and cancellations log at debug level, other failures
// at info level, so that a busy server's logs show what went wrong.
func LogCalls(l *slog.Logger) Interceptor {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, call *Call) (proto.Message, error) {
			start := time.Now()
			res, err := next(ctx, call)
			attrs := []any{"method", call.Method, "code", protows.CodeOf(err).String(), "duration", time.Since(start)}
			if conn, ok := transport.ConnFromContext(ctx); ok {
				attrs = append(attrs, "conn", conn.ID())
			}
			level := slog.LevelDebug
			if err != nil {
				perr := protows.AsError(err)
				attrs = append(attrs, "err", perr.Message())
				if perr.Code() != protows.CodeCanceled {
					level = slog.LevelInfo
				}
			}
			l.Log(ctx, level, "protows: call", attrs...)
			return res, err
		}
	}
}
