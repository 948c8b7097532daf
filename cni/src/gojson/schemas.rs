//! The Go types a CNI plugin decodes, as [`Shape`]s for [`super::canonical`].
//!
//! Each mirrors one upstream type; names are the `json` tags. Structs keep
//! unknown keys where what they describe is passed on to other plugins (a
//! net conf, a result, `runtimeConfig`, `args`), and drop them, as Go does,
//! where netboot reads every field itself (a port mapping, a range).
//! Pointers to scalars (`*int`, `*bool`) are [`Shape::Any`]: `null` clears.

use super::shape::{Field, Shape, Struct};

const S: Shape = Shape::Scalar;
const STRINGS: Shape = Shape::Slice(&Shape::Scalar);

const fn f(name: &'static str, shape: Shape) -> Field {
    Field::new(name, shape)
}

/// libcni `types.DNS`.
pub static DNS: Struct = Struct {
    fields: &[
        f("nameservers", STRINGS),
        f("domain", S),
        f("search", STRINGS),
        f("options", STRINGS),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// libcni `types.Route` (decoded through its `route` twin).
pub static ROUTE: Struct = Struct {
    fields: &[
        f("dst", S),
        f("gw", S),
        f("mtu", S),
        f("advmss", S),
        f("priority", S),
        f("table", Shape::Any),
        f("scope", Shape::Any),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// libcni `types.IPAM`: only `type`; the rest belongs to the IPAM plugin.
pub static IPAM: Struct = Struct {
    fields: &[f("type", S)],
    embeds: &[],
    keep_unknown: true,
};

/// libcni `types.GCAttachment`.
pub static GC_ATTACHMENT: Struct = Struct {
    fields: &[f("containerID", S), f("ifname", S)],
    embeds: &[],
    keep_unknown: false,
};

/// containernetworking/plugins portmap `PortMapEntry` (the
/// `portMappings` capability; go-cni's `PortMapping` has no tags, so
/// containerd sends `HostPort`, `ContainerPort`, `Protocol`, `HostIP`).
pub static PORT_MAPPING: Struct = Struct {
    fields: &[
        f("hostPort", S),
        f("containerPort", S),
        f("protocol", S),
        f("hostIP", S),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// host-local `allocator.Range` (the `ipRanges` capability; go-cni sends
/// `Subnet`, `RangeStart`, `RangeEnd`, `Gateway`).
pub static RANGE: Struct = Struct {
    fields: &[
        f("rangeStart", S),
        f("rangeEnd", S),
        f("subnet", S),
        f("gateway", S),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// bandwidth `BandwidthEntry` (go-cni sends `IngressRate`, ...).
pub static BANDWIDTH: Struct = Struct {
    fields: &[
        f("ingressRate", S),
        f("ingressBurst", S),
        f("egressRate", S),
        f("egressBurst", S),
        f("unshapedSubnets", STRINGS),
        f("shapedSubnets", STRINGS),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// The `dns` capability (CONVENTIONS.md; go-cni's `DNS` sends `Servers`,
/// `Searches`, `Options`).
pub static RUNTIME_DNS: Struct = Struct {
    fields: &[
        f("servers", STRINGS),
        f("searches", STRINGS),
        f("options", STRINGS),
    ],
    embeds: &[],
    keep_unknown: false,
};

const RANGE_SET: Shape = Shape::Slice(&Shape::Struct(&RANGE));

/// `runtimeConfig`: the well-known capabilities (CONVENTIONS.md), each as
/// the reference plugin that consumes it declares it (portmap, host-local,
/// bandwidth, bridge/tuning `mac`, ...). Others pass through.
pub static RUNTIME_CONFIG: Struct = Struct {
    fields: &[
        f("portMappings", Shape::Slice(&Shape::Struct(&PORT_MAPPING))),
        f("ipRanges", Shape::Slice(&RANGE_SET)),
        f("bandwidth", Shape::PtrStruct(&BANDWIDTH)),
        f("dns", Shape::Struct(&RUNTIME_DNS)),
        f("ips", STRINGS),
        f("mac", S),
        f("aliases", STRINGS),
        f("cgroupPath", S),
        f("infinibandGUID", S),
        f("deviceID", S),
        f(
            "io.kubernetes.cri.pod-annotations",
            Shape::Map(&Shape::Scalar),
        ),
    ],
    embeds: &[],
    keep_unknown: true,
};

/// `args.cni` (CONVENTIONS.md): host-local's `IPAMArgs` (`ips`) and
/// bridge's `BridgeArgs` (`mac`).
pub static ARGS_CNI: Struct = Struct {
    fields: &[f("ips", STRINGS), f("mac", S)],
    embeds: &[],
    keep_unknown: true,
};

/// `args`: other consumers' keys pass through.
pub static ARGS: Struct = Struct {
    fields: &[f("cni", Shape::PtrStruct(&ARGS_CNI))],
    embeds: &[],
    keep_unknown: true,
};

const ATTACHMENTS: Shape = Shape::Slice(&Shape::Struct(&GC_ATTACHMENT));

/// One plugin's config: libcni `types.NetConf`, plus the keys every
/// reference plugin that takes them declares alike (`runtimeConfig`,
/// `args`). `prevResult` is a map in `types.NetConf`, which libcni's
/// `ParsePrevResult` then decodes into the result type, so it is
/// canonicalised as a result. Plugin-specific keys pass through.
pub static NET_CONF: Struct = Struct {
    fields: &[
        f("cniVersion", S),
        f("name", S),
        f("type", S),
        f("capabilities", Shape::Map(&Shape::Scalar)),
        f("ipam", Shape::Struct(&IPAM)),
        f("dns", Shape::Struct(&DNS)),
        f("prevResult", Shape::PtrStruct(&RESULT)),
        f("runtimeConfig", Shape::PtrStruct(&RUNTIME_CONFIG)),
        f("args", Shape::PtrStruct(&ARGS)),
        f("cni.dev/valid-attachments", ATTACHMENTS),
        // The older spelling libcni also sends (containernetworking/cni#1101).
        f("cni.dev/attachments", ATTACHMENTS),
    ],
    embeds: &[],
    keep_unknown: true,
};

/// host-local's `IPAMConfig` (it embeds `*Range`).
pub static HOST_LOCAL_IPAM: Struct = Struct {
    fields: &[
        f("type", S),
        f("routes", Shape::Slice(&Shape::PtrStruct(&ROUTE))),
        f("dataDir", S),
        f("resolvConf", S),
        f("ranges", Shape::Slice(&RANGE_SET)),
    ],
    embeds: &[&RANGE],
    keep_unknown: true,
};

/// bridge's `VlanTrunk`.
pub static VLAN_TRUNK: Struct = Struct {
    fields: &[
        f("minID", Shape::Any),
        f("maxID", Shape::Any),
        f("id", Shape::Any),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// containernetworking/plugins bridge `NetConf`, with `ipam` as host-local
/// (the IPAM plugin it delegates to) reads it.
pub static BRIDGE: Struct = Struct {
    fields: &[
        f("bridge", S),
        f("isGateway", S),
        f("isDefaultGateway", S),
        f("forceAddress", S),
        f("ipMasq", S),
        f("ipMasqBackend", Shape::Any),
        f("mtu", S),
        f("hairpinMode", S),
        f("promiscMode", S),
        f("vlan", S),
        f("vlanTrunk", Shape::Slice(&Shape::PtrStruct(&VLAN_TRUNK))),
        f("preserveDefaultVlan", S),
        f("macspoofchk", S),
        f("enabledad", S),
        f("disableContainerInterface", S),
        f("portIsolation", S),
        f("ipam", Shape::Struct(&HOST_LOCAL_IPAM)),
    ],
    embeds: &[&NET_CONF],
    keep_unknown: true,
};

/// portmap's own options (`PortMapConf` less `types.NetConf`).
pub static PORTMAP_OPTIONS: Struct = Struct {
    fields: &[
        f("snat", Shape::Any),
        f("conditionsV4", Shape::Any),
        f("conditionsV6", Shape::Any),
        f("masqAll", S),
        f("markMasqBit", Shape::Any),
        f("externalSetMarkChain", Shape::Any),
        f("backend", Shape::Any),
    ],
    embeds: &[],
    keep_unknown: true,
};

/// `types100.Interface`.
pub static INTERFACE: Struct = Struct {
    fields: &[
        f("name", S),
        f("mac", S),
        f("mtu", S),
        f("sandbox", S),
        f("socketPath", S),
        f("pciID", S),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// `types100.IPConfig` / `types040.IPConfig` (`version`).
pub static IP_CONFIG: Struct = Struct {
    fields: &[
        f("version", S),
        f("interface", Shape::Any),
        f("address", S),
        f("gateway", S),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// `types020.IPConfig` (`ip4` / `ip6`).
pub static IP_CONFIG_020: Struct = Struct {
    fields: &[
        f("ip", S),
        f("gateway", S),
        f("routes", Shape::Slice(&Shape::Struct(&ROUTE))),
    ],
    embeds: &[],
    keep_unknown: false,
};

/// A result of any version: the fields of `types100.Result`,
/// `types040.Result` and `types020.Result` (their names do not clash).
pub static RESULT: Struct = Struct {
    fields: &[
        f("cniVersion", S),
        f("interfaces", Shape::Slice(&Shape::PtrStruct(&INTERFACE))),
        f("ips", Shape::Slice(&Shape::PtrStruct(&IP_CONFIG))),
        f("routes", Shape::Slice(&Shape::PtrStruct(&ROUTE))),
        f("dns", Shape::Struct(&DNS)),
        f("ip4", Shape::PtrStruct(&IP_CONFIG_020)),
        f("ip6", Shape::PtrStruct(&IP_CONFIG_020)),
    ],
    embeds: &[],
    keep_unknown: true,
};

/// libcni `version.PluginInfo` (a VERSION answer).
pub static PLUGIN_INFO: Struct = Struct {
    fields: &[f("cniVersion", S), f("supportedVersions", STRINGS)],
    embeds: &[],
    keep_unknown: false,
};

/// libcni `types.Error`.
pub static ERROR: Struct = Struct {
    fields: &[f("code", S), f("msg", S), f("details", S)],
    embeds: &[],
    keep_unknown: false,
};
