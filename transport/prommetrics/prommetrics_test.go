package prommetrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/memnet"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"github.com/protows/protows/transport/prommetrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMetricsEndToEnd serves real traffic and reads the collectors back.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testMetricsEndToEnd)
}

func testMetricsEndToEnd(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := router.New()
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(r, transport.Config{Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := memnet.NewHTTPServer(srv)
	defer hs.Close()
	url := hs.WebSocketURL()

	// A refused handshake.
	if _, _, err := (&websocket.Dialer{NetDialContext: hs.Listener.DialContext}).Dial(url, http.Header{"Origin": {"https://evil.example"}}); err == nil {
		t.Fatal("evil origin accepted")
	}
	d := websocket.Dialer{Subprotocols: []string{codec.ProtoName}, NetDialContext: hs.Listener.DialContext}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := codec.Proto()
	payload, _ := c.AppendPayload(nil, &testv1.EchoRequest{Text: "hi"})
	frame, _ := codec.MarshalFrame(c, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: protows.MethodID(testservice.EchoMethod), Payload: payload})
	if err := ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	open := `
# HELP protows_connections_open Open WebSocket connections.
# TYPE protows_connections_open gauge
protows_connections_open{subprotocol="protows.v1.proto"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(open), "protows_connections_open"); err != nil {
		t.Fatal(err)
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	ws.Close()
	// Let the server see the close, so that Shutdown's 1001 does not race
	// with it.
	synctest.Wait()
	closed := strings.Replace(open, "} 1", "} 0", 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(closed), "protows_connections_open"); err != nil {
		t.Fatalf("the server did not see the close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	want := `
# HELP protows_connections_closed_total Ended connections by close code.
# TYPE protows_connections_closed_total counter
protows_connections_closed_total{code="1000",subprotocol="protows.v1.proto"} 1
# HELP protows_handshakes_rejected_total Refused handshakes by reason.
# TYPE protows_handshakes_rejected_total counter
protows_handshakes_rejected_total{reason="origin"} 1
# HELP protows_messages_received_total WebSocket messages received.
# TYPE protows_messages_received_total counter
protows_messages_received_total{subprotocol="protows.v1.proto"} 1
# HELP protows_connections_open Open WebSocket connections.
# TYPE protows_connections_open gauge
protows_connections_open{subprotocol="protows.v1.proto"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"protows_connections_closed_total", "protows_handshakes_rejected_total",
		"protows_messages_received_total", "protows_connections_open"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "protows_handler_duration_seconds"); n != 1 {
		t.Fatalf("handler histograms: %d", n)
	}
}

// TestShed: shed connections are counted apart from their 1013 closes.
func TestShed(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ConnShed()
	m.ConnShed()
	want := `
# HELP protows_connections_shed_total Connections shed because the server ran Config.MaxCalls calls: they drain and close with 1013.
# TYPE protows_connections_shed_total counter
protows_connections_shed_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "protows_connections_shed_total"); err != nil {
		t.Fatal(err)
	}
}
