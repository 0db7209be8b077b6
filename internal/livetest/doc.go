// Package livetest owns the one rule for tests that need Docker and a kind
// node image: skip with the reason on a developer's machine without them,
// fail under CI=true (a skip in CI would hide lost coverage). It must not
// create or delete anything.
package livetest
