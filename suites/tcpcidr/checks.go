package tcpcidr

import (
	"embed"
	"strings"

	"github.com/meshconform/meshconform/suites/check"
)

// Suite is this suite's name.
const Suite = "tcp-cidr"

//go:embed manifests/*.yaml
var manifests embed.FS

var needs = []check.Requirement{check.NeedsIstio, check.NeedsSidecar}

// SelectRatings is the query the meshed client runs as bookinfo.
const SelectRatings = "SELECT ReviewID, Rating FROM test.ratings ORDER BY ReviewID"

func mysql() check.Destination {
	return check.Destination{Target: "mysql", Port: 3306, Protocol: check.MySQL}
}

func otherIP3306() check.Destination {
	return check.Destination{Address: `{{var "otherIP"}}`, Port: 3306, Protocol: check.TCP}
}

// Checks is the suite's explicit list.
func Checks() []check.Check {
	return []check.Check{
		{
			Name:        "TCPServiceEntryAllowsMySQLByCIDR",
			Suite:       Suite,
			Description: "A TCP ServiceEntry for the database's IP/32 on 3306 lets the meshed pod read test.ratings as bookinfo, seeing the value the admin just set, while UPDATE is refused.",
			Labels:      map[string]string{"protocol": "MySQL"},
			Policy:      check.RegistryOnly,
			Requires:    needs,
			Steps: []check.Step{{
				Name:  "entry applied",
				Apply: check.ManifestFS(manifests, "mysql-cidr"),
				// Proof the external database is used: the admin changes a
				// rating from outside the mesh, the meshed pod must read it.
				AdminSQL: []string{`UPDATE test.ratings SET Rating = {{var "rating"}} WHERE ReviewID = 1`},
				Expect: []check.Expectation{
					{From: check.Client, To: mysql(), Query: SelectRatings, Want: check.Allowed,
						WantRows:    []string{`1,{{var "rating"}}`, "2,4"},
						WantCluster: `outbound|3306||{{host "mysql"}}`},
					{From: check.Client, To: mysql(), Query: "UPDATE test.ratings SET Rating = 1 WHERE ReviewID = 2",
						Want: check.Allowed, WantSQLError: 1142,
						Note: "least privilege: bookinfo may only SELECT (ER_TABLEACCESS_DENIED_ERROR)"},
				},
			}},
			NegativeControl: check.Mutation{
				Description: "the entry lists another address (192.0.2.10/32) instead of the database's",
				Mutate: func(c *check.Check) {
					m := &c.Steps[0].Apply[0]
					m.Text = strings.Replace(m.Text, `{{ip "mysql"}}/32`, "192.0.2.10/32", 1)
				},
				// Both queries' connections are reset: neither the rows nor
				// the SQL error can be seen.
				Flips: []check.Flip{{Expect: 0, Observed: check.BlockedByMesh}, {Expect: 1, Observed: check.BlockedByMesh}},
			},
		},
		{
			Name:        "TCPServiceEntryOtherIPStaysBlocked",
			Suite:       Suite,
			Description: "With the database's /32 entry applied, TCP to another address on port 3306 is still reset (BlackHoleCluster).",
			Labels:      map[string]string{"protocol": "TCP"},
			Policy:      check.RegistryOnly,
			Requires:    needs,
			Steps: []check.Step{{
				Name:  "entry applied",
				Apply: check.ManifestFS(manifests, "mysql-cidr"),
				Expect: []check.Expectation{
					{From: check.Client, To: otherIP3306(), Want: check.BlockedByMesh},
				},
			}},
			NegativeControl: check.Mutation{
				Description: "the entry is widened to the CIDR that holds every fixture",
				Mutate: func(c *check.Check) {
					m := &c.Steps[0].Apply[0]
					m.Text = strings.Replace(m.Text, `{{ip "mysql"}}/32`, `{{var "fixtureCIDR"}}`, 1)
				},
				Flips: []check.Flip{{Observed: check.Allowed}},
			},
		},
		{
			Name:        "TCPServiceEntryWiderCIDRBehavesAsWritten",
			Suite:       Suite,
			Description: "A TCP ServiceEntry for a wider CIDR on 3306 opens every address in it on 3306 and no other port.",
			Labels:      map[string]string{"protocol": "TCP"},
			Policy:      check.RegistryOnly,
			Requires:    needs,
			Steps: []check.Step{{
				Name:  "wide entry applied",
				Apply: check.ManifestFS(manifests, "wide-cidr"),
				Expect: []check.Expectation{
					{From: check.Client, To: otherIP3306(), Want: check.Allowed, WantCluster: "outbound|3306||fixtures-3306.external.test"},
					{From: check.Client, To: check.Destination{Address: `{{var "otherIP"}}`, Port: 9000, Protocol: check.TCP}, Want: check.BlockedByMesh,
						Note: "same address, a port the entry does not list"},
				},
			}},
			NegativeControl: check.Mutation{
				Description: "the entry is narrowed to the database's /32",
				Mutate: func(c *check.Check) {
					m := &c.Steps[0].Apply[0]
					m.Text = strings.Replace(m.Text, `{{var "fixtureCIDR"}}`, `{{ip "mysql"}}/32`, 1)
				},
				// The other address is blocked again; port 9000 stays blocked.
				Flips: []check.Flip{{Expect: 0, Observed: check.BlockedByMesh}},
			},
		},
	}
}
