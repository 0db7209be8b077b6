package sim

import (
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

func protoClone(mc *meshconfig.MeshConfig) *meshconfig.MeshConfig {
	return proto.Clone(mc).(*meshconfig.MeshConfig)
}
