// Package istiomesh adapts *istio.Mesh (package clusters/istio) to the
// live driver's Mesh interface, so that package live does not build Istio.
// It owns nothing else and must stay a thin translation.
package istiomesh
