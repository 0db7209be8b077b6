package live

// Code names the live driver's functions behind each part of a check, for
// `meshconform checks --explain` (method expressions: name them with
// srcloc.Func, never call them).
var Code = struct {
	// Change applies and deletes a step's manifests; Observe renders one
	// expectation into a probe request and runs it in the source pod;
	// Control repeats a blocked call from the out-of-mesh control pod;
	// Converge waits for consecutive agreeing observations; Masquerade
	// configures ip-masq-agent and the return route for a masquerade check.
	Change, Observe, Control, Converge, Masquerade any
}{
	Change:     (*Driver).change,
	Observe:    (*Driver).observe,
	Control:    (*Driver).control,
	Converge:   (*Driver).converge,
	Masquerade: (*Driver).setupMasquerade,
}
