// Package testservice implements protows.test.v1.TestService, the service
// the test server (cmd/protows-testserver) and the package tests of
// protows serve, and a JWT issuer for tests.
package testservice

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	protows "github.com/protows/protows"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"github.com/protows/protows/transport/jwtauth"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The full names of TestService's methods.
const (
	// EchoMethod returns its text.
	EchoMethod = testv1.TestServiceEchoMethod
	// FailMethod returns a chosen error or panics.
	FailMethod = testv1.TestServiceFailMethod
	// SleepMethod replies after a delay.
	SleepMethod = testv1.TestServiceSleepMethod
	// CountMethod streams numbers.
	CountMethod = testv1.TestServiceCountMethod
	// WhoamiMethod names the caller.
	WhoamiMethod = testv1.TestServiceWhoamiMethod
	// SumMethod adds the numbers of a client stream.
	SumMethod = testv1.TestServiceSumMethod
	// EchoStreamMethod echoes a bidirectional stream.
	EchoStreamMethod = testv1.TestServiceEchoStreamMethod
)

// Register registers every method of TestService on r, through the
// generated RegisterTestServiceHandler: every test that talks to the test
// service exercises the generated server code too.
func Register(r *router.Router) error {
	return testv1.RegisterTestServiceHandler(r, Service{})
}

// Service is TestService: its methods are the package's functions.
type Service struct{}

var _ testv1.TestServiceHandler = Service{}

// Echo is the package's Echo.
func (Service) Echo(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
	return Echo(ctx, req)
}

// Fail is the package's Fail.
func (Service) Fail(ctx context.Context, req *testv1.FailRequest) (*testv1.FailResponse, error) {
	return Fail(ctx, req)
}

// Sleep is the package's Sleep.
func (Service) Sleep(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
	return Sleep(ctx, req)
}

// Count is the package's Count.
func (Service) Count(ctx context.Context, req *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
	return Count(ctx, req, s)
}

// Whoami is the package's Whoami.
func (Service) Whoami(ctx context.Context, req *testv1.WhoamiRequest) (*testv1.WhoamiResponse, error) {
	return Whoami(ctx, req)
}

// Sum is the package's Sum.
func (Service) Sum(ctx context.Context, s router.ClientStream[*testv1.SumRequest]) (*testv1.SumResponse, error) {
	return Sum(ctx, s)
}

// EchoStream is the package's EchoStream.
func (Service) EchoStream(ctx context.Context, s router.BidiStream[*testv1.EchoStreamRequest, *testv1.EchoStreamResponse]) error {
	return EchoStream(ctx, s)
}

// Echo returns its text and padding.
func Echo(_ context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
	return &testv1.EchoResponse{Text: req.GetText(), Padding: req.GetPadding()}, nil
}

// Fail returns the requested error (with details when asked), or panics
// with the message.
func Fail(_ context.Context, req *testv1.FailRequest) (*testv1.FailResponse, error) {
	if req.GetPanic() {
		panic("testservice: " + req.GetMessage())
	}
	code := protows.Code(req.GetCode())
	if code == 0 {
		code = protows.CodeInternal
	}
	err := protows.Errorf(code, "%s", req.GetMessage())
	if req.GetDetails() {
		for _, m := range []proto.Message{durationpb.New(1500 * time.Millisecond), req} {
			d, derr := protows.NewErrorDetail(m)
			if derr != nil {
				return nil, derr
			}
			err.AddDetail(d)
		}
	}
	return nil, err
}

// maxSleep bounds Sleep so that a test cannot park a handler for ever.
const maxSleep = time.Minute

// Sleep replies after the delay, or fails with canceled when the call is
// cancelled first.
func Sleep(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
	d := min(req.GetDelay().AsDuration(), maxSleep)
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return &testv1.SleepResponse{Slept: durationpb.New(time.Since(start))}, nil
	case <-ctx.Done():
		return nil, protows.NewError(protows.CodeOf(ctx.Err()), ctx.Err())
	}
}

// Count streams 1..count, one every interval (until cancelled when count
// is 0), then ends with fail_code when it is set.
func Count(ctx context.Context, req *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
	interval := req.GetInterval().AsDuration()
	var t *time.Timer
	if interval > 0 {
		t = time.NewTimer(interval)
		defer t.Stop()
	}
	for n := uint32(1); req.GetCount() == 0 || n <= req.GetCount(); n++ {
		if t != nil {
			select {
			case <-t.C:
				t.Reset(interval)
			case <-ctx.Done():
				return ctx.Err()
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.Send(&testv1.CountResponse{N: n}); err != nil {
			return err
		}
	}
	if c := req.GetFailCode(); c != 0 {
		return protows.Errorf(protows.Code(c), "failed after %d messages", req.GetCount())
	}
	return nil
}

// Sum adds the numbers of the client's messages and replies once the
// client is done: at once for a message with stop, with an error for one
// with fail_code, after a message's delay before reading the next.
func Sum(ctx context.Context, s router.ClientStream[*testv1.SumRequest]) (*testv1.SumResponse, error) {
	res := &testv1.SumResponse{}
	for s.Receive() {
		m := s.Msg()
		res.Count++
		res.Sum += m.GetN()
		if c := m.GetFailCode(); c != 0 {
			return nil, protows.Errorf(protows.Code(c), "failed at message %d", res.Count)
		}
		if m.GetStop() {
			return res, nil
		}
		if err := pause(ctx, m.GetDelay().AsDuration()); err != nil {
			return nil, err
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// EchoStream answers each message with its repeat echoes (1 when 0),
// after its delay, numbered across the stream; a message with fail_code
// ends the stream with that code.
func EchoStream(ctx context.Context, s router.BidiStream[*testv1.EchoStreamRequest, *testv1.EchoStreamResponse]) error {
	var n uint32
	for {
		m, err := s.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if c := m.GetFailCode(); c != 0 {
			return protows.Errorf(protows.Code(c), "failed after %d echoes", n)
		}
		if err := pause(ctx, m.GetDelay().AsDuration()); err != nil {
			return err
		}
		for range max(m.GetRepeat(), 1) {
			n++
			if err := s.Send(&testv1.EchoStreamResponse{Text: m.GetText(), Padding: m.GetPadding(), N: n}); err != nil {
				return err
			}
		}
	}
}

// pause waits d (at most maxSleep), or fails when ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(min(d, maxSleep))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return protows.NewError(protows.CodeOf(ctx.Err()), ctx.Err())
	}
}

// Whoami names the caller, its connection and subprotocol.
func Whoami(ctx context.Context, _ *testv1.WhoamiRequest) (*testv1.WhoamiResponse, error) {
	c, ok := transport.ConnFromContext(ctx)
	if !ok {
		return nil, protows.Errorf(protows.CodeInternal, "no connection in context")
	}
	res := &testv1.WhoamiResponse{ConnectionId: c.ID(), Subprotocol: c.Subprotocol()}
	if p := c.Principal(); p != nil {
		res.Subject = p.Subject
	}
	return res, nil
}

// The issuer and audience of tokens minted by an Issuer.
const (
	// Issuer is the "iss" of minted tokens.
	Issuer = "protows-testserver"
	// Audience is the "aud" of minted tokens.
	Audience = "protows-test"
)

// TokenIssuer mints HS256 JWTs with a random key and authenticates them.
type TokenIssuer struct {
	key  []byte
	auth *jwtauth.Authenticator
}

// NewTokenIssuer returns an issuer with a fresh random key.
func NewTokenIssuer() (*TokenIssuer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	auth, err := jwtauth.New(jwtauth.Config{Key: key, Methods: []string{"HS256"}, Issuer: Issuer, Audience: Audience})
	if err != nil {
		return nil, err
	}
	return &TokenIssuer{key: key, auth: auth}, nil
}

// Key returns the HMAC key, for tests that forge tokens.
func (i *TokenIssuer) Key() []byte { return i.key }

// Authenticator returns the authenticator of the issuer's tokens.
func (i *TokenIssuer) Authenticator() *jwtauth.Authenticator { return i.auth }

// Mint returns a token for sub that expires after ttl.
func (i *TokenIssuer) Mint(sub string, ttl time.Duration) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   sub,
		Issuer:    Issuer,
		Audience:  jwt.ClaimStrings{Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := tok.SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("testservice: sign: %w", err)
	}
	return s, exp, nil
}

// Runs counts the runs of the Echo handler per request text, so that
// tests of idempotency keys in other languages can check that a handler
// ran once: Interceptor counts, ServeHTTP answers GET ?text=T with the
// number of runs for T (cmd/protows-testserver serves it at /runs).
type Runs struct {
	mu   sync.Mutex
	runs map[string]int
}

// Interceptor counts every Echo run that returned.
func (rs *Runs) Interceptor(next router.HandlerFunc) router.HandlerFunc {
	return func(ctx context.Context, call *router.Call) (proto.Message, error) {
		res, err := next(ctx, call)
		if req, ok := call.Request.(*testv1.EchoRequest); ok {
			rs.mu.Lock()
			if rs.runs == nil {
				rs.runs = make(map[string]int)
			}
			rs.runs[req.GetText()]++
			rs.mu.Unlock()
		}
		return res, err
	}
}

// Of returns the number of Echo runs for text.
func (rs *Runs) Of(text string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.runs[text]
}

// ServeHTTP answers with the number of Echo runs for the query's text, in
// decimal.
func (rs *Runs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprint(w, rs.Of(r.URL.Query().Get("text")))
}
