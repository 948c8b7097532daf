//! Unit tests of `security`: merging, users, capabilities, privileged,
//! and the refusals of the spec and manifest readers.

use super::*;
use crate::kube::{from_yaml, Options};

fn pod(doc: &str) -> PodSpec {
    PodSpec::from_yaml(doc).unwrap()
}

fn img(user: &str) -> ImageInfo {
    ImageInfo {
        user: user.into(),
        cmd: vec!["sh".into()],
        ..ImageInfo::default()
    }
}

const ALL: &[&str] = &["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"];

fn eff(doc: &str, user: &str) -> Result<Effective> {
    let p = pod(doc);
    resolve(&p.containers[0], &p, &img(user), ALL)
}

const ONE: &str = "name: p\ncontainers:\n  - name: c\n    image: i\n";

#[test]
fn defaults_are_containerds() {
    let e = eff(ONE, "").unwrap();
    assert_eq!((e.uid, e.gid), (0, 0));
    assert_eq!(e.additional_gids, [0]);
    assert_eq!(e.caps, DEFAULT_CAPS);
    assert!(!e.no_new_privs && !e.readonly_root && !e.privileged);
}

#[test]
fn container_over_pod_and_groups_merged() {
    let doc = "name: p\nsecurityContext: {runAsUser: 1000, runAsGroup: 2000, \
               supplementalGroups: [4, 3], fsGroup: 5}\ncontainers:\n  - name: c\n    image: i\n    \
               securityContext: {runAsUser: 1001}\n";
    let e = eff(doc, "7:7").unwrap();
    assert_eq!((e.uid, e.gid), (1001, 2000));
    assert_eq!(e.additional_gids, [3, 4, 5, 2000]);
}

#[test]
fn image_user_numeric_only() {
    assert_eq!(eff(ONE, "10:20").map(|e| (e.uid, e.gid)).unwrap(), (10, 20));
    assert_eq!(eff(ONE, "10").map(|e| (e.uid, e.gid)).unwrap(), (10, 0));
    let e = eff(ONE, "www-data").unwrap_err().to_string();
    assert!(e.contains("image \"i\"") && e.contains("www-data"), "{e}");
    // A runAsUser makes the image's user irrelevant; runAsGroup alone
    // keeps the image's UID.
    let run_as = format!("{ONE}    securityContext: {{runAsUser: 3}}\n");
    assert_eq!(eff(&run_as, "www-data").unwrap().uid, 3);
    let group = format!("{ONE}    securityContext: {{runAsGroup: 9}}\n");
    assert_eq!(
        eff(&group, "10:20").map(|e| (e.uid, e.gid)).unwrap(),
        (10, 9)
    );
}

#[test]
fn run_as_non_root_refuses_uid_0_naming_the_container() {
    let doc = "name: p\nsecurityContext: {runAsNonRoot: true}\ncontainers:\n  - name: web\n    image: i\n";
    let e = eff(doc, "").unwrap_err().to_string();
    assert_eq!(
        e,
        "container has runAsNonRoot and image will run as root (pod: \"p\", container: web)"
    );
    assert!(eff(doc, "0:5").is_err());
    assert_eq!(eff(doc, "1000").unwrap().uid, 1000);
    let explicit = format!("{doc}    securityContext: {{runAsUser: 0}}\n");
    let e = eff(&explicit, "1000").unwrap_err().to_string();
    assert!(
        e.contains("runAsUser breaks non-root policy") && e.contains("web"),
        "{e}"
    );
    let off = format!("{doc}    securityContext: {{runAsNonRoot: false}}\n");
    assert_eq!(eff(&off, "").unwrap().uid, 0);
}

#[test]
fn capabilities_add_drop_and_all_in_containerds_order() {
    let caps = |sc: &str| {
        let doc = format!("{ONE}    securityContext: {{capabilities: {sc}}}\n");
        eff(&doc, "").unwrap().caps
    };
    let c = caps("{add: [NET_ADMIN, cap_sys_time], drop: [CHOWN]}");
    assert!(c.contains(&"CAP_NET_ADMIN") && c.contains(&"CAP_SYS_TIME"));
    assert!(!c.contains(&"CAP_CHOWN") && c.contains(&"CAP_KILL"));
    assert_eq!(
        caps("{add: [NET_BIND_SERVICE], drop: [ALL]}"),
        ["CAP_NET_BIND_SERVICE"]
    );
    assert!(caps("{add: [ALL], drop: [ALL]}").is_empty());
    assert_eq!(
        caps("{add: [ALL], drop: [CAP_CHOWN]}"),
        ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    );
    assert!(!caps("{add: [KILL], drop: [KILL]}").contains(&"CAP_KILL"));
    assert_eq!(caps_of_mask(0x1001), ["CAP_CHOWN", "CAP_NET_ADMIN"]);
}

#[test]
fn unknown_capabilities_and_bad_ids_are_refused_at_their_path() {
    let e = PodSpec::from_yaml(&format!(
        "{ONE}    securityContext: {{capabilities: {{drop: [CHOWN, NET_ADMINZ]}}}}\n"
    ))
    .unwrap_err();
    assert_eq!(e.path, "containers[0].securityContext.capabilities.drop[1]");
    let e = PodSpec::from_yaml(&format!(
        "{ONE}    securityContext: {{privileged: true, allowPrivilegeEscalation: false}}\n"
    ))
    .unwrap_err();
    assert_eq!(
        e.path,
        "containers[0].securityContext.allowPrivilegeEscalation"
    );
    let e = PodSpec::from_yaml(&format!(
        "name: p\nsecurityContext: {{supplementalGroups: [1, 4294967295]}}\n{}",
        &ONE["name: p\n".len()..]
    ))
    .unwrap_err();
    assert_eq!(e.path, "securityContext.supplementalGroups[1]");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
                    - name: c\n    image: i\n    securityContext: {capabilities: {add: [BOGUS]}}\n";
    let e = from_yaml(manifest, Options::default()).unwrap_err();
    assert_eq!(
        e.path,
        "spec.containers[0].securityContext.capabilities.add[0]"
    );
}

#[test]
fn size_limit_on_disk_is_refused_not_ignored() {
    let e = PodSpec::from_yaml(&format!(
        "{ONE}volumes: [{{name: v, emptyDir: {{sizeLimit: 1Gi}}}}]\n"
    ))
    .unwrap_err();
    assert_eq!(e.path, "volumes[0].emptyDir.sizeLimit");
    PodSpec::from_yaml(&format!(
        "{ONE}volumes: [{{name: v, emptyDir: {{medium: Memory, sizeLimit: 1Gi}}}}]\n"
    ))
    .unwrap();
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
                    - {name: c, image: i}\n  volumes: [{name: v, emptyDir: {sizeLimit: 1Gi}}]\n";
    let e = from_yaml(manifest, Options::default()).unwrap_err();
    assert_eq!(e.path, "spec.volumes[0].emptyDir.sizeLimit");
    let opts = Options {
        ignore_unsupported: true,
    };
    let pods = from_yaml(manifest, opts).unwrap();
    assert_eq!(
        pods[0].warnings[0].path,
        "spec.volumes[0].emptyDir.sizeLimit"
    );
    assert_eq!(
        pods[0].spec.volumes[0]
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit,
        None
    );
}

fn spec_of(e: &Effective) -> Value {
    let mut s = json!({
        "process": {"user": {"uid": 0, "gid": 0}, "noNewPrivileges": true},
        "root": {"path": "rootfs", "readonly": false},
        "mounts": [
            {"destination": "/sys", "type": "sysfs", "options": ["nosuid", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["ro"]},
            {"destination": "/x", "type": "bind", "options": ["rbind", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "cgroup"}],
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
        },
    });
    apply(&mut s, e, vec![json!({"path": "/dev/null"})]);
    s
}

#[test]
fn apply_writes_user_caps_and_flags() {
    let doc = format!(
        "{ONE}    securityContext: {{runAsUser: 5, readOnlyRootFilesystem: true, \
         allowPrivilegeEscalation: false}}\n"
    );
    let s = spec_of(&eff(&doc, "").unwrap());
    assert_eq!(
        s["process"]["user"],
        json!({"uid": 5, "gid": 0, "additionalGids": [0]})
    );
    assert_eq!(s["process"]["noNewPrivileges"], true);
    assert_eq!(s["root"]["readonly"], true);
    assert_eq!(
        s["process"]["capabilities"]["effective"],
        json!(DEFAULT_CAPS)
    );
    assert_eq!(s["mounts"][0]["options"], json!(["nosuid", "ro"]));
    assert!(s["linux"].get("devices").is_none());
    assert_eq!(s["linux"]["maskedPaths"], json!(["/proc/kcore"]));
}

#[test]
fn privileged_is_containerds_with_privileged_and_host_devices() {
    let doc =
        format!("{ONE}    securityContext: {{privileged: true, capabilities: {{drop: [ALL]}}}}\n");
    let e = eff(&doc, "").unwrap();
    assert_eq!(e.caps, ALL);
    assert!(!e.no_new_privs);
    let s = spec_of(&e);
    assert!(s["linux"].get("maskedPaths").is_none());
    assert!(s["linux"].get("readonlyPaths").is_none());
    assert_eq!(s["mounts"][0]["options"], json!(["nosuid", "rw"]));
    assert_eq!(s["mounts"][1]["options"], json!(["rw"]));
    assert_eq!(
        s["mounts"][2]["options"],
        json!(["rbind", "ro"]),
        "binds keep ro"
    );
    assert_eq!(
        s["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    assert_eq!(s["linux"]["devices"], json!([{"path": "/dev/null"}]));
    assert_eq!(s["linux"]["namespaces"], json!([{"type": "pid"}]));
}

#[test]
fn exec_inherits_the_containers_process() {
    let p = json!({"user": {"uid": 5}, "args": ["sleep"], "env": ["A=1"], "terminal": true});
    let e = crate::oci::exec_process(&p, &["id".to_string()]);
    assert_eq!(e["user"]["uid"], 5);
    assert_eq!(e["args"], json!(["id"]));
    assert_eq!(e["env"], json!(["A=1"]));
    assert_eq!(e["terminal"], false);
}

#[test]
fn a_privileged_container_makes_the_sandbox_sysfs_writable() {
    let pause = || json!({"mounts": [{"type": "sysfs", "options": ["nosuid", "ro"]}]});
    let (mut plain, mut privileged) = (pause(), pause());
    sandbox(&mut plain, &pod(ONE));
    assert_eq!(plain["mounts"][0]["options"], json!(["nosuid", "ro"]));
    let doc = format!("{ONE}initContainers:\n  - name: i\n    image: i\n    securityContext: {{privileged: true}}\n");
    sandbox(&mut privileged, &pod(&doc));
    assert_eq!(privileged["mounts"][0]["options"], json!(["nosuid", "rw"]));
}
