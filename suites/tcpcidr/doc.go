// Package tcpcidr is suite 3, TCP CIDR entries: under REGISTRY_ONLY a TCP
// ServiceEntry with `addresses: [IP/32]` on port 3306 lets a meshed pod run
// a real MySQL query against the external database as the least-privilege
// user bookinfo (which may SELECT and nothing else); other IPs on 3306
// stay blocked; a wider CIDR behaves exactly as written. From
// seeds/external-mysql-tcp-serviceentry.txt.
package tcpcidr
