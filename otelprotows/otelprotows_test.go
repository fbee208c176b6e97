package otelprotows_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/otelprotows"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// traced is a test server and a client, both traced into one in-memory
// exporter.
type traced struct {
	exp *tracetest.InMemoryExporter
	tp  *sdktrace.TracerProvider
	url string
	c   *client.Client
}

func startTraced(t *testing.T) *traced {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)),
		router.WithInterceptors(otelprotows.ServerInterceptor(otelprotows.WithTracerProvider(tp))))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(r, transport.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	tr := &traced{exp: exp, tp: tp, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, tr.url, client.WithInterceptors(otelprotows.ClientInterceptor(otelprotows.WithTracerProvider(tp))))
	if err != nil {
		t.Fatal(err)
	}
	tr.c = c
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
		_ = tp.Shutdown(ctx)
	})
	return tr
}

// span returns the one ended span with the given name and kind.
func (tr *traced) span(t *testing.T, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found []tracetest.SpanStub
		for _, s := range tr.exp.GetSpans() {
			if s.Name == name && s.SpanKind == kind {
				found = append(found, s)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		if len(found) > 1 || time.Now().After(deadline) {
			t.Fatalf("%d %v spans named %s; all: %v", len(found), kind, name, tr.exp.GetSpans().Snapshots())
		}
		time.Sleep(5 * time.Millisecond) // the server's span ends after the reply is queued
	}
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestUnaryTrace: a unary call made within a span gives a client span, its
// child, and a server span, the client span's child through the
// traceparent metadata entry, with the RPC attributes and the outcome.
func TestUnaryTrace(t *testing.T) {
	t.Parallel()
	tr := startTraced(t)
	ctx, parent := tr.tp.Tracer("test").Start(context.Background(), "parent")
	if _, err := client.CallUnary[testv1.EchoResponse](ctx, tr.c, testservice.EchoMethod, &testv1.EchoRequest{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	_, err := client.CallUnary[testv1.FailResponse](ctx, tr.c, testservice.FailMethod,
		&testv1.FailRequest{Code: uint32(protows.CodeNotFound), Message: "no such room"})
	if protows.CodeOf(err) != protows.CodeNotFound {
		t.Fatal(err)
	}
	parent.End()

	name := strings.TrimPrefix(testservice.EchoMethod, "/")
	cs := tr.span(t, name, trace.SpanKindClient)
	ss := tr.span(t, name, trace.SpanKindServer)
	if cs.Parent.SpanID() != parent.SpanContext().SpanID() || cs.SpanContext.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("client span's parent %v, want the caller's span %v", cs.Parent, parent.SpanContext())
	}
	if ss.SpanContext.TraceID() != cs.SpanContext.TraceID() || ss.Parent.SpanID() != cs.SpanContext.SpanID() || !ss.Parent.IsRemote() {
		t.Errorf("server span's parent %v, want the remote client span %v", ss.Parent, cs.SpanContext)
	}
	for _, s := range []tracetest.SpanStub{cs, ss} {
		a := attrs(s)
		if a["rpc.system"].AsString() != "protows" || a["rpc.service"].AsString() != "protows.test.v1.TestService" ||
			a["rpc.method"].AsString() != "Echo" || a["rpc.protows.code"].AsString() != "ok" || s.Status.Code != codes.Unset {
			t.Errorf("%v span: attributes %v, status %v", s.SpanKind, s.Attributes, s.Status)
		}
	}
	if attrs(ss)["protows.connection_id"].AsString() == "" {
		t.Error("the server span has no connection id")
	}

	failName := strings.TrimPrefix(testservice.FailMethod, "/")
	for _, kind := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindServer} {
		s := tr.span(t, failName, kind)
		if attrs(s)["rpc.protows.code"].AsString() != "not_found" || s.Status.Code != codes.Error || s.Status.Description != "no such room" {
			t.Errorf("failed call's %v span: %v %v", kind, s.Attributes, s.Status)
		}
	}
}

// TestStreamTrace: a stream's client span ends when the stream ends, with
// its message count; the server span is its child.
func TestStreamTrace(t *testing.T) {
	t.Parallel()
	tr := startTraced(t)
	st, err := client.CallServerStream[testv1.CountResponse](context.Background(), tr.c, testservice.CountMethod, &testv1.CountRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for st.Receive() {
		n++
	}
	if n != 3 || st.Err() != nil {
		t.Fatalf("%d messages, %v", n, st.Err())
	}
	name := strings.TrimPrefix(testservice.CountMethod, "/")
	cs := tr.span(t, name, trace.SpanKindClient)
	ss := tr.span(t, name, trace.SpanKindServer)
	if cs.Parent.IsValid() {
		t.Errorf("client span without a caller's span has parent %v", cs.Parent)
	}
	if ss.Parent.SpanID() != cs.SpanContext.SpanID() {
		t.Errorf("server span's parent %v, want %v", ss.Parent, cs.SpanContext)
	}
	if got := attrs(cs)["rpc.protows.messages_received"].AsInt64(); got != 3 {
		t.Errorf("messages_received = %d", got)
	}
}

// TestServerReadsTraceparent: any client that sets the traceparent
// metadata entry (the TypeScript runtime, a raw client) puts the server's
// span into its trace.
func TestServerReadsTraceparent(t *testing.T) {
	t.Parallel()
	tr := startTraced(t)
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	d := websocket.Dialer{Subprotocols: []string{codec.JSONName}}
	ws, _, err := d.Dial(tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	frame, _ := codec.MarshalFrame(codec.JSON(), &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST,
		Method: testservice.EchoMethod, Payload: []byte(`{}`),
		Metadata: map[string]string{"traceparent": "00-" + traceID + "-" + spanID + "-01"}})
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	ss := tr.span(t, strings.TrimPrefix(testservice.EchoMethod, "/"), trace.SpanKindServer)
	if ss.SpanContext.TraceID().String() != traceID || ss.Parent.SpanID().String() != spanID {
		t.Errorf("server span in trace %v with parent %v, want %s and %s", ss.SpanContext.TraceID(), ss.Parent.SpanID(), traceID, spanID)
	}
}
