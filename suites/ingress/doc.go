// Package ingress is suite 4, TLS gRPC ingress: a gRPC greeter in the mesh
// behind the Istio ingress gateway (Gateway tls.mode SIMPLE with a
// credentialName secret, plus a VirtualService); a client outside the mesh
// calls SayHello over CA-verified TLS with the right SNI and gets through,
// while plaintext and a wrong SNI are refused. From
// seeds/istio-grpc-tls-ingress.txt (without its InsecureSkipVerify).
package ingress
