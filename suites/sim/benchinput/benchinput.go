package benchinput

import (
	"fmt"
	"strings"
)

// Generate returns Istio YAML with n ServiceEntries and an expectations
// file with m expectations against it (REGISTRY_ONLY).
func Generate(n, m int) (config, expectations string) {
	var c strings.Builder
	for i := 0; i < n; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&c, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: http-%d, namespace: egress}\nspec:\n  hosts: [api%d.http.example]\n  location: MESH_EXTERNAL\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n", i, i)
		case 1:
			fmt.Fprintf(&c, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: tls-%d, namespace: egress}\nspec:\n  hosts: [api%d.tls.example]\n  location: MESH_EXTERNAL\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  resolution: DNS\n", i, i)
		default:
			fmt.Fprintf(&c, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db-%d, namespace: egress}\nspec:\n  hosts: [db%d.tcp.example]\n  addresses: [%s/32]\n  location: MESH_EXTERNAL\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n", i, i, ip(i))
		}
	}
	var e strings.Builder
	e.WriteString("apiVersion: meshconform.dev/v1alpha1\nkind: Expectations\nmeshConfig: {outboundTrafficPolicy: REGISTRY_ONLY}\nexpectations:\n")
	for j := 0; j < m; j++ {
		i := (j * 7) % n
		src := fmt.Sprintf("{namespace: team%d, labels: {app: app%d}}", j%5, j%2)
		switch {
		case j%4 == 3:
			fmt.Fprintf(&e, "- name: Unregistered%d\n  source: %s\n  destination: {host: nope%d.example, port: 443, protocol: TLS}\n  expect: BlockedByMesh\n  unregistered: true\n", j, src, j)
		case i%3 == 0:
			fmt.Fprintf(&e, "- name: HTTP%d\n  source: %s\n  destination: {host: api%d.http.example, port: 80, protocol: HTTP}\n  expect: Allowed\n", j, src, i)
		case i%3 == 1:
			fmt.Fprintf(&e, "- name: TLS%d\n  source: %s\n  destination: {host: api%d.tls.example, port: 443, protocol: TLS}\n  expect: Allowed\n", j, src, i)
		default:
			fmt.Fprintf(&e, "- name: TCP%d\n  source: %s\n  destination: {address: %s, port: 5432, protocol: TCP}\n  expect: Allowed\n", j, src, ip(i))
		}
	}
	return c.String(), e.String()
}

func ip(i int) string { return fmt.Sprintf("10.%d.%d.%d", 100+i/65536, (i/256)%256, i%256) }
