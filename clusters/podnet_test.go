package clusters

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPodNetworkScript(t *testing.T) {
	nodes := []podNode{{"mc-control-plane", "172.18.0.2", "10.244.0.0/24"}, {"mc-worker", "172.18.0.3", "10.244.1.0/24"}}
	s, err := podNetworkScript(nodes[1], nodes)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"cat > " + PodNetworkConflist + ".tmp",
		"ip route replace 10.244.0.0/24 via 172.18.0.2\n",
		"-A MESHCONFORM-MASQ -d 10.244.0.0/24 -j RETURN",
		"-A MESHCONFORM-MASQ -d 10.244.1.0/24 -j RETURN",
		"-A MESHCONFORM-MASQ -s 10.244.1.0/24 -m addrtype ! --dst-type LOCAL -j MASQUERADE",
		"-C POSTROUTING -j MESHCONFORM-MASQ",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "via 172.18.0.3") {
		t.Errorf("route to the node's own pod CIDR:\n%s", s)
	}
	// The conflist: ptp without masquerade over the node's pod CIDR, then portmap.
	conf, err := ptpConflist("10.244.1.0/24")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Plugins []struct {
			Type   string `json:"type"`
			IPMasq *bool  `json:"ipMasq"`
			IPAM   struct {
				Type   string                `json:"type"`
				Ranges [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(conf), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 2 || c.Plugins[0].Type != "ptp" || c.Plugins[0].IPMasq == nil || *c.Plugins[0].IPMasq ||
		c.Plugins[0].IPAM.Type != "host-local" || c.Plugins[0].IPAM.Ranges[0][0]["subnet"] != "10.244.1.0/24" || c.Plugins[1].Type != "portmap" {
		t.Errorf("conflist %s", conf)
	}
	if _, err := ptpConflist("not-a-cidr"); err == nil {
		t.Error("bad pod CIDR accepted")
	}
}

func TestParseDockerPort(t *testing.T) {
	for _, tc := range []struct {
		out  string
		host string
		port int
		ok   bool
	}{
		{"127.0.0.1:43127\n", "127.0.0.1", 43127, true},
		{"0.0.0.0:43127\n[::]:43127\n", "127.0.0.1", 43127, true},
		{"[::1]:43127\n127.0.0.1:5000\n", "127.0.0.1", 5000, true},
		{"172.18.0.2:43127\n", "", 0, false},
		{"", "", 0, false},
	} {
		h, p, err := parseDockerPort(tc.out, 31443, "n")
		if (err == nil) != tc.ok || h != tc.host || p != tc.port {
			t.Errorf("%q: %s:%d %v", tc.out, h, p, err)
		}
	}
}
