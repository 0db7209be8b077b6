package pushed

// Code names the pushed-config driver's functions behind each part of a
// check, for `meshconform checks --explain` (method expressions: name them
// with srcloc.Func, never call them).
var Code = struct {
	// Observe judges one expectation on the config istiod pushed to the
	// source's identity; Wait waits until a change shows in that config.
	Observe, Wait any
}{
	Observe: (*Driver).observe,
	Wait:    (*Driver).waitChange,
}
