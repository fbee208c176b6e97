package memnet_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows/internal/memnet"
)

// TestBuffering: a write returns once its bytes fit into the peer's receive
// buffer; a larger one waits until the peer reads.
func TestBuffering(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := memnet.Pipe()
		defer a.Close()
		defer b.Close()
		b.SetReadBuffer(4)
		if n, err := a.Write([]byte("abcd")); n != 4 || err != nil {
			t.Fatalf("write into an empty buffer: %d, %v", n, err)
		}
		wrote := make(chan error, 1)
		go func() {
			_, err := a.Write([]byte("efgh"))
			wrote <- err
		}()
		synctest.Wait()
		select {
		case err := <-wrote:
			t.Fatalf("a write into a full buffer returned %v", err)
		default:
		}
		got := make([]byte, 0, 8)
		buf := make([]byte, 3)
		for len(got) < 8 {
			n, err := b.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		if string(got) != "abcdefgh" {
			t.Fatalf("read %q", got)
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	})
}

// TestDeadlines: reads and writes fail with os.ErrDeadlineExceeded exactly
// at their deadline, on the bubble's clock; a later deadline or none
// lets them work again.
func TestDeadlines(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := memnet.Pipe()
		defer a.Close()
		defer b.Close()
		start := time.Now()
		a.SetReadDeadline(start.Add(3 * time.Second))
		_, err := a.Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past the deadline: %v", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("the read failed after %v, want 3s", d)
		}
		a.SetReadDeadline(time.Time{})
		go b.Write([]byte("x"))
		if n, err := a.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Fatalf("read without a deadline: %d, %v", n, err)
		}

		a.SetReadBuffer(1)
		b.SetWriteDeadline(time.Now().Add(time.Second))
		if n, err := b.Write([]byte("yz")); n != 1 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write into a full buffer past the deadline: %d, %v", n, err)
		}
		b.SetWriteDeadline(time.Now().Add(-time.Second))
		if _, err := b.Write([]byte("z")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write with a past deadline: %v", err)
		}
		// A deadline moved before it passed does not fire.
		a.SetDeadline(time.Now().Add(time.Second))
		a.SetDeadline(time.Now().Add(time.Hour))
		time.Sleep(2 * time.Second)
		if n, err := a.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Fatalf("read after a deadline was moved: %d, %v", n, err)
		}
	})
}

// TestClose: the peer of a closed Conn reads what was sent, then io.EOF,
// and its writes are discarded; the closed end's own calls fail with
// net.ErrClosed.
// CloseWrite ends only one direction.
func TestClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := memnet.Pipe()
		a.Write([]byte("bye"))
		blocked := make(chan error, 1)
		go func() {
			_, err := a.Read(make([]byte, 1))
			blocked <- err
		}()
		synctest.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-blocked; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a read blocked in Close: %v", err)
		}
		if err := a.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if got, err := io.ReadAll(b); string(got) != "bye" || err != nil {
			t.Fatalf("the peer read %q, %v", got, err)
		}
		if n, err := b.Write([]byte("x")); n != 1 || err != nil {
			t.Fatalf("write to a closed peer: %d, %v; want it discarded", n, err)
		}
		if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on the closed end: %v", err)
		}
		b.Close()

		c, d := memnet.Pipe()
		defer c.Close()
		defer d.Close()
		c.Write([]byte("half"))
		c.CloseWrite()
		if got, err := io.ReadAll(d); string(got) != "half" || err != nil {
			t.Fatalf("read after CloseWrite: %q, %v", got, err)
		}
		if _, err := d.Write([]byte("back")); err != nil {
			t.Fatalf("the other direction after CloseWrite: %v", err)
		}
		if _, err := c.Write([]byte("more")); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write after CloseWrite: %v", err)
		}
	})
}

// TestListener: Dial reaches Accept; a closed listener refuses.
func TestListener(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := memnet.Listen()
		c, err := l.Dial()
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if s.RemoteAddr().String() != c.LocalAddr().String() || c.RemoteAddr().String() != l.Addr().String() {
			t.Errorf("addresses: client %v -> %v, server sees %v", c.LocalAddr(), c.RemoteAddr(), s.RemoteAddr())
		}
		go c.Write([]byte("hi"))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hi" {
			t.Fatalf("read %q, %v", buf, err)
		}
		c.Close()
		s.Close()
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
		if _, err := l.Dial(); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("Dial after Close: %v", err)
		}
	})
}

// TestHTTPServer serves HTTP over a Listener.
func TestHTTPServer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := memnet.NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello "+r.URL.Path)
		}))
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL() + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "hello /x" {
			t.Fatalf("body %q, %v", body, err)
		}
	})
}
