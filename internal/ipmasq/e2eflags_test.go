package ipmasq

// Accept the e2e-framework flags, so `go test ./suites/... -args --labels
// suite=masquerade` runs every package under suites/.
import _ "github.com/meshconform/meshconform/suites/e2e/e2eflags"
