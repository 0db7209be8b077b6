package pushed

import (
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// plaintext is the transport of istiod's xDS port 15010, which serves
// plaintext gRPC by design (no TLS is skipped: there is none). The watch
// reaches it only through a port-forward on 127.0.0.1.
func plaintext() credentials.TransportCredentials { return insecure.NewCredentials() }
