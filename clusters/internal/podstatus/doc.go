// Package podstatus turns the status of pods, ReplicaSets and their events
// into precise, human-readable reasons why a workload is not ready ("pod
// istio-system/istiod-x container discovery: image docker.io/istio/pilot:1.31.1
// cannot be pulled (ImagePullBackOff): ..."), and decides when such a problem
// has lasted long enough to stop waiting.
//
// It only reads the Kubernetes API; it never changes anything.
package podstatus
