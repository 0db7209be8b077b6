// Package timeouts is the one timeout config of a live run: every bound
// and retry count of the cluster, Istio, the live and pushed-config
// drivers and the fixtures, with its default and the condition it waits
// for, in sections that are the sections of the `--timeouts` YAML file.
//
// It owns the types (each package's Timeouts is an alias of its section),
// the defaults, the one poll interval and the one image-pull grace shared
// by every wait, filling zero fields from the defaults (WithDefaults),
// validation (Validate), and the documented YAML (Print, Parse). It must
// not import any other package of this module: everything imports it.
package timeouts
