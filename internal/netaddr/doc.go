// Package netaddr holds the address arithmetic the harness needs in more
// than one place. It owns nothing else and imports no package of this
// module.
package netaddr
