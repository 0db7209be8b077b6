// Package benchinput generates the simulation benchmark's input (used by
// the Go benchmark and hack/genbench); it is test support, not API.
package benchinput
