// Package fromcluster reads, from a running cluster, the input the
// simulation takes from files: ServiceEntry, Sidecar, Gateway,
// VirtualService, DestinationRule, WorkloadEntry (networking.istio.io)
// and Service (v1) in every namespace, the control plane's mesh config
// (the `mesh` key of ConfigMap `istio` or `istio-<rev>` in istiod's
// namespace) and the ip-masq-agent config (kube-system/ip-masq-agent, key
// `config`). Each object goes through the same decode and Istio validation
// as a file given with -f (sim.ParseYAML), named by a pseudo file
// "cluster:<context>/<Kind>/<namespace>/<name>", so verdicts and errors
// read the same both ways.
//
// It owns the client-go loading rules (kubeconfig, context, in-cluster),
// paging through large lists, finding istiod (label app=istiod, revision
// from istio.io/rev, version from its image tag) and merging the
// cluster's objects with files (the files win on the same
// kind/namespace/name).
//
// It must never write to the cluster: it uses get and list only, on
// exactly the resources in Rules (shipped as the ClusterRole
// clusters/manifests/meshconform-reader.yaml).
package fromcluster
