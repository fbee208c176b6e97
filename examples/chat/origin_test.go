package main

import (
	"net"
	"slices"
	"testing"
)

func TestDefaultOrigins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip   string
		want []string
	}{
		{"127.0.0.1", []string{"http://127.0.0.1:8080", "http://localhost:8080"}},
		{"::1", []string{"http://[::1]:8080", "http://localhost:8080"}},
		{"0.0.0.0", []string{"http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080"}},
		{"192.0.2.7", []string{"http://192.0.2.7:8080"}},
	} {
		got, err := defaultOrigins(&net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 8080})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.ip, got, err, tc.want)
		}
	}
	if _, err := defaultOrigins(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}); err == nil {
		t.Error("a unix socket got origins")
	}
}
