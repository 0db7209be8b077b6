// Package masquerade is suite 5, masquerade routing (no Istio needed):
// with ip-masq-agent, pod traffic to destinations outside
// nonMasqueradeCIDRs is SNATed to the node IP; inside them it keeps the pod
// IP, and a network with no route back to the pod CIDR then cannot answer
// — the GKE failure of seeds/gke-ip-masq-agent.txt — while one with a
// return route sees the pod IP. Package ipmasq evaluates the agent's
// config as upstream documents it.
package masquerade
