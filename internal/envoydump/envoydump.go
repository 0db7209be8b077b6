package envoydump

import (
	"fmt"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Config is one proxy's config; Warming, if set, is served as the
// warming_state of the dynamic listener of the same name (as Envoy shows a
// listener being updated), next to its active_state.
type Config struct {
	Version   string
	Listeners []*listener.Listener
	Clusters  []*cluster.Cluster
	Routes    []*route.RouteConfiguration
	Warming   *listener.Listener
	// Resource "dynamic_listeners" serves what GET
	// /config_dump?resource=dynamic_listeners does: configs are the
	// DynamicListener entries themselves. "" serves the whole dump.
	Resource string
}

// Marshal returns c as Envoy's config_dump: a BootstrapConfigDump, then
// clusters as dynamic_active_clusters, listeners as dynamic_listeners with
// an active_state, routes as dynamic_route_configs, each with c.Version as
// version_info (Envoy's last accepted xDS version).
func Marshal(c Config) ([]byte, error) {
	var err error
	mustAny := func(m proto.Message) *anypb.Any {
		a, e := anypb.New(m)
		if e != nil && err == nil {
			err = e
		}
		return a
	}
	cd := &admin.ClustersConfigDump{VersionInfo: c.Version}
	for _, cl := range c.Clusters {
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &admin.ClustersConfigDump_DynamicCluster{VersionInfo: c.Version, Cluster: mustAny(cl)})
	}
	ld := &admin.ListenersConfigDump{VersionInfo: c.Version}
	for _, l := range c.Listeners {
		dl := &admin.ListenersConfigDump_DynamicListener{Name: l.GetName(),
			ActiveState: &admin.ListenersConfigDump_DynamicListenerState{VersionInfo: c.Version, Listener: mustAny(l)}}
		if c.Warming != nil && c.Warming.GetName() == l.GetName() {
			dl.WarmingState = &admin.ListenersConfigDump_DynamicListenerState{VersionInfo: c.Version + "-next", Listener: mustAny(c.Warming)}
		}
		ld.DynamicListeners = append(ld.DynamicListeners, dl)
	}
	if c.Resource == "dynamic_listeners" {
		dump := &admin.ConfigDump{}
		for _, dl := range ld.DynamicListeners {
			dump.Configs = append(dump.Configs, mustAny(dl))
		}
		return marshal(dump, err)
	} else if c.Resource != "" {
		return nil, fmt.Errorf("config_dump: resource %q not supported (dynamic_listeners or none)", c.Resource)
	}
	rd := &admin.RoutesConfigDump{}
	for _, r := range c.Routes {
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &admin.RoutesConfigDump_DynamicRouteConfig{VersionInfo: c.Version, RouteConfig: mustAny(r)})
	}
	dump := &admin.ConfigDump{Configs: []*anypb.Any{mustAny(&admin.BootstrapConfigDump{}), mustAny(cd), mustAny(ld), mustAny(rd)}}
	return marshal(dump, err)
}

func marshal(dump *admin.ConfigDump, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("config_dump: %w", err)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(dump)
	if err != nil {
		return nil, fmt.Errorf("config_dump: %w", err)
	}
	return b, nil
}
