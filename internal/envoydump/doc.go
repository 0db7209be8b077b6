// Package envoydump writes an Envoy config the way Envoy's admin endpoint
// serves it (GET /config_dump: an envoy.admin.v3.ConfigDump as JSON with
// proto field names and @type on every Any). Tests use it to turn the
// config Istio's generator builds (pilot/test/xds) into golden
// config_dump input, so config_dump readers are tested on what a sidecar
// would serve, not on hand-written JSON. It owns nothing else and must not
// be used to fake a running proxy in production code.
package envoydump
