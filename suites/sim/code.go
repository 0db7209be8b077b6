package sim

// Code names the simulation driver's functions behind each part of a
// check, for `meshconform checks --explain` (method expressions: name them
// with srcloc.Func, never call them).
var Code = struct {
	// Observe judges one expectation on the generated config; Judge runs
	// Istio's simulator for a source and destination; Masquerade judges
	// masquerade checks with ip-masq-agent's semantics.
	Observe, Judge, Masquerade any
}{
	Observe:    (*Driver).observe,
	Judge:      Judge,
	Masquerade: (*Driver).runMasquerade,
}
