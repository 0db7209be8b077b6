// Package analysis runs Istio's own config analyzers — the ones `istioctl
// analyze` runs (istio.io/istio/pkg/config/analysis/analyzers.AllCombined,
// through local.IstiodAnalyzer) — as a library over YAML documents, and
// returns their messages as findings.Findings with code (IST0xxx), level,
// object, file:line, text and Istio's documentation link.
//
// It owns feeding documents and the mesh config to the analyzer and
// mapping its messages; it must not judge messages itself (levels and
// texts are Istio's) and must not touch a cluster.
package analysis
