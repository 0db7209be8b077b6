package probe

// Accept (and ignore) e2e-framework's flags: go test ./suites/... -args --labels ...
import _ "github.com/meshconform/meshconform/suites/e2e/e2eflags"
