// Package app is meshconform's command line: one file per command, flags
// parsed here, and the only place that prints errors and picks exit codes
// (0 all passed, 1 a check failed, 2 bad input or environment).
package app
