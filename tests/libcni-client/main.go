// libcni-client: a tiny CNI runtime built on libcni, used by netboot's
// integration tests as a real third-party client. It drives plugins exactly
// like cnitool does (same config loading, container-id derivation, CNI_ARGS
// and CAP_ARGS handling), plus a result cache dir and GC/STATUS.
//
// Debian's libcni (1.1.2) has no GC/STATUS API, so those two commands invoke
// each plugin of the list directly through libcni's pkg/invoke, the way
// libcni >= 1.2 does (STATUS: every plugin in order; GC: every plugin with
// "cni.dev/valid-attachments" injected).
//
// Usage: libcni-client [flags] add|check|del|gc|status <netname> <netns-path>
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

var (
	confDir     = flag.String("conf-dir", envOr("NETCONFPATH", "/etc/cni/net.d"), "conflist directory (NETCONFPATH)")
	cniPath     = flag.String("cni-path", os.Getenv("CNI_PATH"), "plugin search path (CNI_PATH)")
	containerID = flag.String("container-id", os.Getenv("CNI_CONTAINERID"), "container id (CNI_CONTAINERID; default derived from the netns path)")
	ifName      = flag.String("ifname", envOr("CNI_IFNAME", "eth0"), "interface name (CNI_IFNAME)")
	capArgs     = flag.String("cap-args", os.Getenv("CAP_ARGS"), "capability args as JSON, e.g. {\"portMappings\":[...]} (CAP_ARGS)")
	cniArgs     = flag.String("cni-args", os.Getenv("CNI_ARGS"), "K=V;K=V plugin args (CNI_ARGS)")
	cacheDir    = flag.String("cache-dir", envOr("CNI_CACHE_DIR", libcni.CacheDir), "libcni result cache dir")
	validAtt    = flag.String("valid-attachments", envOr("CNI_VALID_ATTACHMENTS", "[]"), "GC: JSON list of {containerID, ifname}")
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "libcni-client: "+format+"\n", a...)
	os.Exit(1)
}

func runtimeConf(netns string) *libcni.RuntimeConf {
	id := *containerID
	if id == "" {
		// Same derivation as cnitool: a stable id from the netns path.
		sum := sha512.Sum512([]byte(netns))
		id = fmt.Sprintf("cnitool-%x", sum[:10])
	}
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: *ifName, CacheDir: *cacheDir}
	if *cniArgs != "" {
		for _, pair := range strings.Split(*cniArgs, ";") {
			kv := strings.SplitN(pair, "=", 2)
			if len(kv) != 2 {
				fail("invalid CNI_ARGS pair %q", pair)
			}
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	if *capArgs != "" {
		if err := json.Unmarshal([]byte(*capArgs), &rt.CapabilityArgs); err != nil {
			fail("invalid CAP_ARGS: %v", err)
		}
	}
	return rt
}

// rawEach runs command on every plugin of the list, with extra keys injected.
func rawEach(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, command string, extra map[string]interface{}) error {
	paths := filepath.SplitList(*cniPath)
	for _, plugin := range list.Plugins {
		inject := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
		for k, v := range extra {
			inject[k] = v
		}
		conf, err := libcni.InjectConf(plugin, inject)
		if err != nil {
			return err
		}
		bin, err := invoke.FindInPath(plugin.Network.Type, paths)
		if err != nil {
			return err
		}
		args := &invoke.Args{Command: command, ContainerID: rt.ContainerID, NetNS: rt.NetNS,
			IfName: rt.IfName, PluginArgs: rt.Args, Path: *cniPath}
		if err := invoke.ExecPluginWithoutResult(ctx, bin, conf.Bytes, args, nil); err != nil {
			return fmt.Errorf("plugin %s: %w", plugin.Network.Type, err)
		}
	}
	return nil
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags] add|check|del|gc|status <netname> <netns-path>\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 || flag.NArg() > 3 {
		flag.Usage()
		os.Exit(2)
	}
	command, netName, netns := flag.Arg(0), flag.Arg(1), flag.Arg(2)
	if netns != "" {
		abs, err := filepath.Abs(netns)
		if err != nil {
			fail("netns path: %v", err)
		}
		netns = abs
	}
	list, err := libcni.LoadConfList(*confDir, netName)
	if err != nil {
		fail("load network %q from %s: %v", netName, *confDir, err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*cniPath), *cacheDir, nil)
	rt := runtimeConf(netns)
	ctx := context.Background()

	switch command {
	case "add":
		result, e := cni.AddNetworkList(ctx, list, rt)
		if e == nil {
			e = result.Print()
		}
		err = e
	case "check":
		err = cni.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cni.DelNetworkList(ctx, list, rt)
	case "status":
		err = rawEach(ctx, list, rt, "STATUS", nil)
	case "gc":
		var att []map[string]string
		if err = json.Unmarshal([]byte(*validAtt), &att); err == nil {
			err = rawEach(ctx, list, rt, "GC", map[string]interface{}{"cni.dev/valid-attachments": att})
		}
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fail("%s %s: %v", command, netName, err)
	}
}
