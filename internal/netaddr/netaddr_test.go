package netaddr

import "testing"

func TestCovering(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"10.244.0.0/24", "10.244.1.0/24"}, "10.244.0.0/23"},
		{[]string{"10.244.3.0/24"}, "10.244.3.0/24"},
		{[]string{"172.18.0.3", "172.18.0.4"}, "172.18.0.0/29"},
		{[]string{"172.18.0.3"}, "172.18.0.3/32"},
		{[]string{"10.0.0.1", "192.168.0.1"}, "0.0.0.0/0"},
		{[]string{"fd00::1", "nonsense"}, ""},
	} {
		if got := Covering(tc.in...); got != tc.want {
			t.Errorf("Covering(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
