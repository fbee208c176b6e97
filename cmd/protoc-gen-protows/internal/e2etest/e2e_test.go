package e2etest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	adminv1alpha1 "github.com/protows/protows/cmd/protoc-gen-protows/testdata/golden/go/acme/store/admin/v1alpha1"
	storev1 "github.com/protows/protows/cmd/protoc-gen-protows/testdata/golden/go/acme/store/v1"
	editionsv1 "github.com/protows/protows/cmd/protoc-gen-protows/testdata/golden/go/editions/v1"
	keywordsv1 "github.com/protows/protows/cmd/protoc-gen-protows/testdata/golden/go/keywords/v1"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/internal/tsbuild"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The handlers answer with values derived from the request and the method,
// so a call routed to the wrong method or with a mangled payload fails.

type store struct{}

var _ storev1.StoreServiceHandler = store{}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

func (store) GetItem(_ context.Context, req *storev1.GetItemRequest) (*storev1.Item, error) {
	if req.GetId() == "" {
		return nil, protows.Errorf(protows.CodeNotFound, "no item %q", req.GetId())
	}
	return &storev1.Item{Id: req.GetId(), Name: "item " + req.GetId(), PriceCents: 250, Updated: timestamppb.New(epoch)}, nil
}

func (store) PutItem(_ context.Context, req *storev1.Item) (*emptypb.Empty, error) {
	if req.GetName() == "" {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "an item needs a name")
	}
	return &emptypb.Empty{}, nil
}

func (store) Buy(_ context.Context, req *storev1.BuyRequest) (*storev1.BuyResponse, error) {
	return &storev1.BuyResponse{OrderId: "buy-" + req.GetId()}, nil
}

func (store) WatchItems(ctx context.Context, _ *emptypb.Empty, s router.Stream[*storev1.ItemEvent]) error {
	for i, id := range []string{"a", "b", "c"} {
		if err := s.Send(&storev1.ItemEvent{Item: &storev1.Item{Id: id}, Removed: i == 2}); err != nil {
			return err
		}
	}
	return nil
}

func (store) OldBuy(_ context.Context, req *storev1.BuyRequest) (*storev1.BuyResponse, error) {
	return &storev1.BuyResponse{OrderId: "oldbuy-" + req.GetId()}, nil
}

func (store) OldWatch(ctx context.Context, _ *emptypb.Empty, s router.Stream[*timestamppb.Timestamp]) error {
	if err := s.Send(timestamppb.New(epoch)); err != nil {
		return err
	}
	return protows.Errorf(protows.CodeDataLoss, "the old watch lost the rest")
}

type clock struct{}

var _ storev1.ClockHandler = clock{}

func (clock) Now(context.Context, *emptypb.Empty) (*timestamppb.Timestamp, error) {
	return timestamppb.New(epoch), nil
}

// Ticks sends count timestamps a second of epoch apart, or, when count is
// 0, one every 10ms until the call is cancelled.
func (clock) Ticks(ctx context.Context, req *storev1.TicksRequest, s router.Stream[*timestamppb.Timestamp]) error {
	if req.GetCount() == 0 {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := s.Send(timestamppb.New(epoch)); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
	}
	for i := range req.GetCount() {
		if err := s.Send(timestamppb.New(epoch.Add(time.Duration(i) * time.Second))); err != nil {
			return err
		}
	}
	return nil
}

// inventory implements nothing: every call must answer unimplemented.
type inventory struct {
	storev1.UnimplementedInventoryServiceHandler
}

type admin struct{}

var _ adminv1alpha1.AdminServiceHandler = admin{}

func (admin) Restock(_ context.Context, req *adminv1alpha1.RestockRequest) (*storev1.Item, error) {
	return &storev1.Item{Id: req.GetItem().GetId(), PriceCents: int64(req.GetQuantity())}, nil
}

func (admin) Audit(ctx context.Context, req *durationpb.Duration, s router.Stream[*structpb.Struct]) error {
	st, err := structpb.NewStruct(map[string]any{"for": req.AsDuration().String(), "ok": true})
	if err != nil {
		return err
	}
	return s.Send(st)
}

type legacyAdmin struct{}

func (legacyAdmin) Reset(_ context.Context, req *storev1.GetItemRequest) (*storev1.BuyResponse, error) {
	return &storev1.BuyResponse{OrderId: "reset-" + req.GetId()}, nil
}

// keywords answers every method with its own name and the request's text.
type keywords struct{}

var _ keywordsv1.ClientHandler = keywords{}

func reply(method string, req *keywordsv1.Request) *keywordsv1.Response {
	return &keywordsv1.Response{Text: method + ":" + req.GetText() + ":" + req.GetType()}
}

func (keywords) Delete(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("Delete", req), nil
}
func (keywords) New(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("New", req), nil
}
func (keywords) Constructor(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("Constructor", req), nil
}
func (keywords) ToString(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("ToString", req), nil
}
func (keywords) Type(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("Type", req), nil
}
func (keywords) Func(_ context.Context, req *keywordsv1.Request, s router.Stream[*keywordsv1.Response]) error {
	for range 2 {
		if err := s.Send(reply("Func", req)); err != nil {
			return err
		}
	}
	return nil
}
func (keywords) Interface(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
func (keywords) LowerSnake(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("LowerSnake", req), nil
}

type iface struct{}

func (iface) Default(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("Default", req), nil
}

type promise struct{}

func (promise) Then(_ context.Context, req *keywordsv1.Request) (*keywordsv1.Response, error) {
	return reply("Then", req), nil
}

type editions struct{}

func (editions) Get(_ context.Context, req *editionsv1.GetRequest) (*editionsv1.GetResponse, error) {
	return &editionsv1.GetResponse{Value: proto.String("value of " + req.GetKey())}, nil
}

func (editions) Watch(_ context.Context, req *editionsv1.GetRequest, s router.Stream[*editionsv1.GetResponse]) error {
	return s.Send(&editionsv1.GetResponse{Value: proto.String("watched " + req.GetKey())})
}

// newRouter registers every service of the golden packages.
func newRouter(t *testing.T) *router.Router {
	t.Helper()
	r := router.New(router.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	for _, err := range []error{
		storev1.RegisterStoreServiceHandler(r, store{}),
		storev1.RegisterClockHandler(r, clock{}),
		storev1.RegisterEmptyHandler(r, storev1.UnimplementedEmptyHandler{}),
		storev1.RegisterInventoryServiceHandler(r, inventory{}),
		adminv1alpha1.RegisterAdminServiceHandler(r, admin{}),
		adminv1alpha1.RegisterLegacyAdminServiceHandler(r, legacyAdmin{}),
		keywordsv1.RegisterClientHandler(r, keywords{}),
		keywordsv1.RegisterInterfaceHandler(r, iface{}),
		keywordsv1.RegisterPromiseHandler(r, promise{}),
		editionsv1.RegisterEditionServiceHandler(r, editions{}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// serve starts a transport.Server for r on loopback and returns its URL.
func serve(t *testing.T, r *router.Router) string {
	t.Helper()
	srv := transport.NewServer(r, transport.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ReadHeaderTimeout = 5 * time.Second
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// collect reads a stream to its end and returns its messages and error,
// or the error that kept it from starting.
func collect[T any](s *client.ServerStream[T], err error) ([]*T, error) {
	if err != nil {
		return nil, fmt.Errorf("starting the stream: %w", err)
	}
	defer s.Close()
	var msgs []*T
	for s.Receive() {
		msgs = append(msgs, s.Msg())
	}
	return msgs, s.Err()
}

func checkProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestGeneratedCode calls every method of every service of the golden
// packages through the generated clients, in both codecs.
func TestGeneratedCode(t *testing.T) {
	url := serve(t, newRouter(t))
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(cd.Name(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, url, client.WithCodec(cd), client.WithDialTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			testStore(ctx, t, c)
			testAdmin(ctx, t, c)
			testKeywords(ctx, t, c)
			testEditions(ctx, t, c)
		})
	}
}

func testStore(ctx context.Context, t *testing.T, c *client.Client) {
	s := storev1.NewStoreServiceClient(c)
	item, err := s.GetItem(ctx, &storev1.GetItemRequest{Id: "x"})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	checkProto(t, "GetItem", item, &storev1.Item{Id: "x", Name: "item x", PriceCents: 250, Updated: timestamppb.New(epoch)})
	if _, err := s.GetItem(ctx, &storev1.GetItemRequest{}); protows.CodeOf(err) != protows.CodeNotFound {
		t.Errorf("GetItem of no id: %v, want not_found", err)
	}
	if _, err := s.PutItem(ctx, &storev1.Item{Id: "x", Name: "n"}); err != nil {
		t.Errorf("PutItem: %v", err)
	}
	if _, err := s.PutItem(ctx, &storev1.Item{Id: "x"}); protows.CodeOf(err) != protows.CodeInvalidArgument {
		t.Errorf("PutItem without a name: %v, want invalid_argument", err)
	}
	buy, err := s.Buy(ctx, &storev1.BuyRequest{Id: "x", Quantity: 2})
	if err != nil || buy.GetOrderId() != "buy-x" {
		t.Errorf("Buy = %v, %v; want buy-x", buy, err)
	}
	old, err := s.OldBuy(ctx, &storev1.BuyRequest{Id: "y"}) //nolint:staticcheck // deprecated on purpose
	if err != nil || old.GetOrderId() != "oldbuy-y" {
		t.Errorf("OldBuy = %v, %v; want oldbuy-y", old, err)
	}
	events, err := collect(s.WatchItems(ctx, &emptypb.Empty{}))
	if err != nil || len(events) != 3 || events[0].GetItem().GetId() != "a" || !events[2].GetRemoved() {
		t.Errorf("WatchItems = %v, %v; want a, b, c (removed)", events, err)
	}
	stamps, err := collect(s.OldWatch(ctx, &emptypb.Empty{})) //nolint:staticcheck // deprecated on purpose
	if protows.CodeOf(err) != protows.CodeDataLoss || len(stamps) != 1 || !stamps[0].AsTime().Equal(epoch) {
		t.Errorf("OldWatch = %v, %v; want one timestamp, then data_loss", stamps, err)
	}

	clk := storev1.NewClockClient(c)
	now, err := clk.Now(ctx, &emptypb.Empty{})
	if err != nil || !now.AsTime().Equal(epoch) {
		t.Errorf("Now = %v, %v; want %v", now, err, epoch)
	}
	ticks, err := collect(clk.Ticks(ctx, &storev1.TicksRequest{Count: 4}))
	if err != nil || len(ticks) != 4 || !ticks[3].AsTime().Equal(epoch.Add(3*time.Second)) {
		t.Errorf("Ticks = %v, %v; want 4 ticks a second apart", ticks, err)
	}

	endless, err := clk.Ticks(ctx, &storev1.TicksRequest{})
	if err != nil {
		t.Fatalf("Ticks: %v", err)
	}
	if !endless.Receive() {
		t.Errorf("endless Ticks ended at once: %v", endless.Err())
	}
	if err := endless.Close(); err != nil {
		t.Errorf("Close of a stream: %v", err)
	}
	if endless.Receive() {
		t.Error("Receive after Close returned true")
	}

	_ = storev1.NewEmptyClient(c) // a service with no methods: only the types exist

	_, err = storev1.NewInventoryServiceClient(c).Count(ctx, &storev1.GetItemRequest{Id: "x"})
	var perr *protows.Error
	if !errors.As(err, &perr) || perr.Code() != protows.CodeUnimplemented ||
		perr.Message() != storev1.InventoryServiceCountMethod+" is not implemented" {
		t.Errorf("Count on the unimplemented handler: %v, want unimplemented naming %s", err, storev1.InventoryServiceCountMethod)
	}
}

func testAdmin(ctx context.Context, t *testing.T, c *client.Client) {
	a := adminv1alpha1.NewAdminServiceClient(c)
	item, err := a.Restock(ctx, &adminv1alpha1.RestockRequest{Item: &storev1.GetItemRequest{Id: "z"}, Quantity: 7})
	if err != nil {
		t.Fatalf("Restock: %v", err)
	}
	checkProto(t, "Restock", item, &storev1.Item{Id: "z", PriceCents: 7})
	logs, err := collect(a.Audit(ctx, durationpb.New(90*time.Second)))
	if err != nil || len(logs) != 1 || logs[0].GetFields()["for"].GetStringValue() != "1m30s" || !logs[0].GetFields()["ok"].GetBoolValue() {
		t.Errorf("Audit = %v, %v; want one struct", logs, err)
	}
	res, err := adminv1alpha1.NewLegacyAdminServiceClient(c).Reset(ctx, &storev1.GetItemRequest{Id: "w"}) //nolint:staticcheck // deprecated on purpose
	if err != nil || res.GetOrderId() != "reset-w" {
		t.Errorf("Reset = %v, %v; want reset-w", res, err)
	}
}

func testKeywords(ctx context.Context, t *testing.T, c *client.Client) {
	k := keywordsv1.NewClientClient(c)
	req := &keywordsv1.Request{Text: "t", Type: "ty"}
	unary := []struct {
		name string
		call func(context.Context, *keywordsv1.Request, ...client.CallOption) (*keywordsv1.Response, error)
	}{
		{"Delete", k.Delete},
		{"New", k.New},
		{"Constructor", k.Constructor},
		{"ToString", k.ToString},
		{"Type", k.Type},
		{"LowerSnake", k.LowerSnake},
		{"Default", keywordsv1.NewInterfaceClient(c).Default},
		{"Then", keywordsv1.NewPromiseClient(c).Then},
	}
	for _, u := range unary {
		res, err := u.call(ctx, req)
		if want := u.name + ":t:ty"; err != nil || res.GetText() != want {
			t.Errorf("%s = %v, %v; want %q", u.name, res, err, want)
		}
	}
	if _, err := k.Interface(ctx, &emptypb.Empty{}); err != nil {
		t.Errorf("Interface: %v", err)
	}
	msgs, err := collect(k.Func(ctx, req))
	if err != nil || len(msgs) != 2 || msgs[1].GetText() != "Func:t:ty" {
		t.Errorf("Func = %v, %v; want two Func:t:ty", msgs, err)
	}
}

func testEditions(ctx context.Context, t *testing.T, c *client.Client) {
	e := editionsv1.NewEditionServiceClient(c)
	res, err := e.Get(ctx, &editionsv1.GetRequest{Key: proto.String("k")})
	if err != nil || res.GetValue() != "value of k" {
		t.Errorf("Get = %v, %v; want value of k", res, err)
	}
	msgs, err := collect(e.Watch(ctx, &editionsv1.GetRequest{Key: proto.String("k")}))
	if err != nil || len(msgs) != 1 || msgs[0].GetValue() != "watched k" {
		t.Errorf("Watch = %v, %v; want watched k", msgs, err)
	}
}

// TestGeneratedTypeScript runs testdata/e2e/e2e.ts, which calls every
// method through the generated TypeScript clients in both codecs, against
// the same server.
func TestGeneratedTypeScript(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the TypeScript end-to-end test needs Node.js: %v", err)
	}
	if err := tsbuild.Runtime(root); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	tsc := exec.Command(filepath.Join(root, "node_modules", ".bin", "tsc"),
		"-p", filepath.Join(root, "cmd", "protoc-gen-protows", "testdata", "e2e", "tsconfig.json"), "--outDir", out)
	if b, err := tsc.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	// Node resolves packages from the directory of the importing file
	// upwards: point the build's node_modules at the repository's.
	if err := os.Symlink(filepath.Join(root, "node_modules"), filepath.Join(tmp, "node_modules")); err != nil {
		t.Fatal(err)
	}
	url := serve(t, newRouter(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(out, "e2e", "e2e.js"), url)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node e2e.js: %v\n%s", err, b)
	}
	if got, want := string(b), "proto: ok\njson: ok\n"; got != want {
		t.Errorf("node e2e.js printed %q, want %q", got, want)
	}
}

// TestRegisterTwice checks that registering a service twice on one router
// fails: the router refuses the duplicate method.
func TestRegisterTwice(t *testing.T) {
	r := newRouter(t)
	if err := storev1.RegisterClockHandler(r, clock{}); !errors.Is(err, router.ErrDuplicate) {
		t.Errorf("second RegisterClockHandler: %v, want router.ErrDuplicate", err)
	}
}

// TestMethodConstants checks the generated name and id constants against
// the router and protows.MethodID.
func TestMethodConstants(t *testing.T) {
	r := newRouter(t)
	names := map[string]uint32{
		storev1.StoreServiceGetItemMethod:           storev1.StoreServiceGetItemMethodID,
		storev1.StoreServiceWatchItemsMethod:        storev1.StoreServiceWatchItemsMethodID,
		storev1.ClockTicksMethod:                    storev1.ClockTicksMethodID,
		storev1.InventoryServiceCountMethod:         storev1.InventoryServiceCountMethodID,
		adminv1alpha1.AdminServiceAuditMethod:       adminv1alpha1.AdminServiceAuditMethodID,
		adminv1alpha1.LegacyAdminServiceResetMethod: adminv1alpha1.LegacyAdminServiceResetMethodID,
		keywordsv1.ClientLowerSnakeMethod:           keywordsv1.ClientLowerSnakeMethodID,
		keywordsv1.InterfaceDefaultMethod:           keywordsv1.InterfaceDefaultMethodID,
	}
	for name, id := range names {
		if got := protows.MethodID(name); got != id {
			t.Errorf("%s: generated id %#08x, protows.MethodID %#08x", name, id, got)
		}
		m, ok := r.Lookup(id)
		if !ok || m.Name != name {
			t.Errorf("router.Lookup(%#08x) = %v, %v; want %s", id, m, ok, name)
		}
	}
	if got, want := len(r.Methods()), 6+2+1+2+1+8+1+1+2; got != want {
		t.Errorf("the router has %d methods, want %d", got, want)
	}
}
