// Package serviceentry is suite 2, ServiceEntry unblocking: under
// REGISTRY_ONLY a ServiceEntry (HTTP 80, TLS or HTTPS 443; resolution
// DNS, NONE or STATIC; location MESH_EXTERNAL) makes the echo target
// reachable again, only that host, and deleting it blocks it again. From
// seeds/registry-only-serviceentry.txt and seeds/cloudsql-proxy-serviceentry.txt.
package serviceentry
