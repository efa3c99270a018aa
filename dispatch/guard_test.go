package dispatch_test

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

func TestGuardAllowed(t *testing.T) {
	t.Parallel()
	refused := []string{
		"127.0.0.1", "127.255.0.9", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0",
		"100.64.0.1", "100.127.255.255",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2", "255.255.255.255", "240.0.0.1",
		"fd00:ec2::254",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:192.168.0.1",
		"::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
	}
	allowed := []string{
		"8.8.8.8", "1.1.1.1", "93.184.215.14", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
		"2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
	}
	g := dispatch.NewGuard(nil)
	for _, s := range refused {
		if g.Allowed(netip.MustParseAddr(s)) {
			t.Errorf("Allowed(%s) = true, want refused", s)
		}
	}
	for _, s := range allowed {
		if !g.Allowed(netip.MustParseAddr(s)) {
			t.Errorf("Allowed(%s) = false, want allowed", s)
		}
	}
	if g.Allowed(netip.Addr{}) {
		t.Error("the invalid address is allowed")
	}
	var nilGuard *dispatch.Guard
	if nilGuard.Allowed(netip.MustParseAddr("127.0.0.1")) || !nilGuard.Allowed(netip.MustParseAddr("8.8.8.8")) {
		t.Error("a nil Guard does not behave as one with no allow list")
	}
}

func TestGuardAllowList(t *testing.T) {
	t.Parallel()
	allow, err := dispatch.ParseCIDRs("127.0.0.0/8, 10.1.0.0/16, ::1, 169.254.169.254")
	if err != nil {
		t.Fatal(err)
	}
	g := dispatch.NewGuard(allow)
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::ffff:127.0.0.1", true}, // mapped forms follow the IPv4 allow list
		{"::1", true},
		{"10.1.200.3", true},
		{"10.2.0.1", false},
		{"169.254.169.254", true},
		{"169.254.169.253", false},
		{"192.168.0.1", false},
		{"fd00:ec2::254", false},
		{"8.8.8.8", true},
	} {
		if got := g.Allowed(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Allowed(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestGuardParseCIDRs(t *testing.T) {
	t.Parallel()
	got, err := dispatch.ParseCIDRs("  10.0.0.0/8 ,, 192.168.1.7,fd00::/8 , ::1 ,10.1.2.3/8")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseCIDRs = %v, want %v", got, want)
	}
	for _, s := range []string{"", "  ", " , "} {
		if got, err := dispatch.ParseCIDRs(s); err != nil || got != nil {
			t.Errorf("ParseCIDRs(%q) = %v, %v; want nil, nil", s, got, err)
		}
	}
	for _, s := range []string{"10.0.0.0/33", "localhost", "10.0.0", "1.2.3.4/8/8"} {
		if _, err := dispatch.ParseCIDRs(s); err == nil {
			t.Errorf("ParseCIDRs(%q): no error", s)
		}
	}
}

func TestGuardControl(t *testing.T) {
	t.Parallel()
	g := dispatch.NewGuard(nil)
	for _, addr := range []string{"127.0.0.1:80", "[::1]:443", "[fe80::1%eth0]:80", "[::ffff:10.0.0.1]:80", "garbage"} {
		if err := g.Control("tcp", addr, nil); !errors.Is(err, dispatch.ErrTargetForbidden) {
			t.Errorf("Control(%s) = %v, want ErrTargetForbidden", addr, err)
		}
	}
	if err := g.Control("tcp4", "8.8.8.8:443", nil); err != nil {
		t.Errorf("Control(8.8.8.8:443) = %v", err)
	}
}

func TestGuardCheckURL(t *testing.T) {
	t.Parallel()
	g := dispatch.NewGuard(nil)
	for _, tc := range []struct {
		url       string
		forbidden bool
	}{
		{"http://127.0.0.1:9/x", true},
		{"http://[::1]/", true},
		{"http://localhost/", true},
		{"http://LOCALHOST.:8080/", true},
		{"http://api.localhost/hook", true},
		{"http://169.254.169.254/latest", true},
		{"http://[::ffff:169.254.169.254]/latest", true},
		{"https://10.0.0.5/hook", true},
		{"http://[fd00:ec2::254]/", true},
		{"http://example.com", false},
		{"https://hooks.example.com:8443/pim?x=1", false},
		{"http://8.8.8.8/", false},
		{"http://localhost.example.com/", false}, // a real domain: checked when dialled
	} {
		err := g.CheckURL(t.Context(), tc.url)
		if !tc.forbidden {
			if err != nil {
				t.Errorf("CheckURL(%s) = %v, want nil", tc.url, err)
			}
			continue
		}
		var pe *pimhook.Error
		if !errors.As(err, &pe) || pe.Code != pimhook.CodeTargetForbidden || pe.Kind != pimhook.KindInvalid || pe.Field != "callback_url" {
			t.Errorf("CheckURL(%s) = %#v, want a KindInvalid %s error on callback_url", tc.url, err, pimhook.CodeTargetForbidden)
		}
	}

	allow, _ := dispatch.ParseCIDRs("127.0.0.0/8")
	for _, u := range []string{"http://127.0.0.1:9/x", "http://localhost:8080/"} {
		if err := dispatch.NewGuard(allow).CheckURL(t.Context(), u); err != nil {
			t.Errorf("allow-listed CheckURL(%s) = %v", u, err)
		}
	}
}

// TestGuardSend checks the guard where it matters: on a real connection.
func TestGuardSend(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	req := dispatch.Request{URL: srv.URL, MsgID: "msg_guard", Body: []byte(`{}`), Secrets: []string{pimhook.NewSecret()}}

	c := dispatch.NewClient(dispatch.ClientConfig{})
	res := c.Send(t.Context(), req)
	if res.ErrCode != dispatch.ErrCodeTargetForbidden || !errors.Is(res.Err, dispatch.ErrTargetForbidden) || res.StatusCode != 0 {
		t.Errorf("Send to loopback without allow list = %+v, want target_forbidden", res)
	}
	if pimhook.ErrorCode(res.Err) != pimhook.CodeTargetForbidden {
		t.Errorf("ErrorCode(%v) = %s", res.Err, pimhook.ErrorCode(res.Err))
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the receiver got %d requests through the guard", n)
	}

	res = loopbackClient(t).Send(t.Context(), req)
	if res.ErrCode != "" || res.StatusCode != http.StatusOK {
		t.Errorf("Send with 127.0.0.0/8 allow-listed = %+v, want 200", res)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
}
