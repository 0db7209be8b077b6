// Package srcloc names where code is defined, as "path/file.go:line"
// relative to the module root, for `meshconform checks --explain`. It owns
// nothing else and must not import any other package of this module.
package srcloc
