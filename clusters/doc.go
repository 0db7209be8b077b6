// Package clusters owns the Kubernetes cluster a live run uses: creating,
// reusing or attaching to it, and every change the harness makes to it that
// is not a check's own manifest.
//
// Three modes, chosen by Setup's options:
//
//   - created: a kind cluster made through kind's Go library (never the kind
//     CLI), with the node image of WithNodeImage / KIND_NODE_IMAGE. A failed
//     or interrupted create deletes what it made unless WithRetain.
//     Teardown deletes it unless WithRetain. Its pod network is the
//     harness's own (podnet.go: kind's default CNI off, a ptp conflist
//     without masquerade and routes between nodes written on every node),
//     whatever the node image ships, and NodePorts 31443/31080 are published
//     on 127.0.0.1 (PublishedPort): the host never dials node addresses.
//   - reused (WithReuse): an existing kind cluster of that name is used as
//     is; Teardown removes only what this run made.
//   - existing (WithKubeconfig / WithContext): any cluster, e.g. staging.
//     The harness never creates or deletes the cluster, has no access to its
//     nodes (no image loading, no iptables inspection: those return errors
//     saying so) and only touches namespaces and objects it labels
//     meshconform.dev/managed=true; Istio objects it applies there that do
//     not say whom they are exported to get exportTo ["."].
//     MissingAccess reviews permissions (SelfSubjectAccessReview) before a
//     run changes anything; CreateNamespace never adopts an existing one.
//
// What it provides on top: server-side apply of labelled manifests through
// the dynamic client (Apply, Delete, EnsureNamespace), image loading into
// kind nodes without a registry (LoadImage; PreloadImages pulls once with
// the host's Docker for images the nodes would pull), external names in CoreDNS
// (SetExternalHosts), the masquerade plumbing of the ip-masq-agent checks
// (EnsureIPMasqAgent, DisableCNIMasquerade, SetIPMasqConfig,
// WaitIPMasqRules), and Sweep, which removes what crashed runs left behind.
//
// Marker and sweeping: a kind cluster created here gets a read-only bind
// mount on every node, host directory <state dir>/<name> at /meshconform
// (kind cannot add Docker labels to its node containers). The directory
// holds state.json: run id, owner pid and host, and whether the cluster is
// retained. Sweep deletes a kind cluster only if its name starts with
// "meshconform", its nodes carry that mount, and its state says it is
// neither retained nor owned by a live process. A cluster that someone else
// created, even named meshconform-*, has no such mount and is never touched;
// in existing-cluster mode Sweep is not involved at all.
//
// Waiting: every wait polls an observable condition (rollout status, the
// rules in a node's nat table, an answer from each CoreDNS pod) bounded by
// the documented Timeouts; nothing sleeps a fixed time.
//
// This package must not import Istio (see clusters/istio), must not print
// (it logs through the slog.Logger it is given: progress at Info, details at
// Debug) and must not exit the process.
package clusters
