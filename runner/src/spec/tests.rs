use super::units::CpuSet;
use super::*;

const GOOD_YAML: &str = r#"
name: web
hostname: web-1
network: netboot
ports:
  - containerPort: 80
    hostPort: 8080
  - containerPort: 53
    protocol: UDP
containers:
  - name: httpd
    image: docker.io/library/busybox:latest
    command: ["httpd", "-f"]
    args: ["-p", "80"]
    env:
      A: "1"
      PORT: 80
    workingDir: /www
    mounts:
      - hostPath: /srv/www
        containerPath: /www
        readOnly: true
    resources:
      memory: 64Mi
      cpus: 0.5
      cpuset: "0-1,3"
      cpuShares: 512
  - name: client
    image: busybox
    env: ["X=y=z", "EMPTY="]
"#;

#[test]
fn good_yaml_parses() {
    let s = PodSpec::from_yaml(GOOD_YAML).unwrap();
    assert_eq!(s.name, "web");
    assert_eq!(s.hostname(), "web-1");
    let c = &s.containers[0];
    assert_eq!(env_map(&c.env)["PORT"], "80");
    assert_eq!(c.resources.memory, Some(MemorySize(64 << 20)));
    assert_eq!(c.resources.cpus.unwrap().quota_us(), 50_000);
    assert_eq!(c.resources.cpuset.as_ref().unwrap().to_string(), "0-1,3");
    assert!(c.mounts[0].read_only);
    let env = &s.containers[1].env.0;
    assert_eq!(env[0], ("X".into(), "y=z".into()));
    assert_eq!(env[1], ("EMPTY".into(), String::new()));
    let pm = s.port_mappings();
    assert_eq!(pm.len(), 1, "only published ports become mappings");
    assert_eq!(pm[0]["hostPort"], 8080);
    assert_eq!(pm[0]["protocol"], "tcp");
}

#[test]
fn json_and_yaml_agree() {
    let y = PodSpec::from_yaml(GOOD_YAML).unwrap();
    let j = PodSpec::from_json(&serde_json::to_string(&y).unwrap()).unwrap();
    assert_eq!(y, j);
}

#[test]
fn hostname_defaults_to_name() {
    let s = PodSpec::from_json(r#"{"name":"p","containers":[{"name":"c","image":"i"}]}"#).unwrap();
    assert_eq!(s.hostname(), "p");
}

fn err_yaml(doc: &str) -> String {
    PodSpec::from_yaml(doc).unwrap_err().to_string()
}

fn one_container(extra: &str) -> String {
    format!("name: p\ncontainers:\n  - name: a\n    image: i\n  - name: b\n    image: i\n{extra}")
}

#[test]
fn bad_memory_names_the_field() {
    let e = err_yaml(&one_container("    resources:\n      memory: 12Q\n"));
    assert!(
        e.starts_with("containers[1].resources.memory: \"12Q\" is not a size"),
        "{e}"
    );
}

#[test]
fn unknown_field_names_the_path() {
    let e = err_yaml(&one_container("    resources:\n      memroy: 1G\n"));
    assert!(
        e.starts_with("containers[1].resources: unknown field `memroy`"),
        "{e}"
    );
    let e = err_yaml("name: p\nfoo: 1\ncontainers: []\n");
    assert!(e.contains("unknown field `foo`"), "{e}");
}

#[test]
fn relative_mount_is_refused() {
    let e = err_yaml(&one_container(
        "    mounts:\n      - hostPath: data\n        containerPath: /data\n",
    ));
    assert_eq!(
        e,
        "containers[1].mounts[0].hostPath: \"data\" is not an absolute path"
    );
    let e = err_yaml(&one_container(
        "    mounts:\n      - hostPath: /data\n        containerPath: /a/../b\n",
    ));
    assert!(
        e.starts_with("containers[1].mounts[0].containerPath"),
        "{e}"
    );
}

#[test]
fn other_errors() {
    let cases = [
        (
            "    resources:\n      cpuset: 3-1\n",
            "containers[1].resources.cpuset",
        ),
        (
            "    resources:\n      cpus: 0\n",
            "containers[1].resources.cpus",
        ),
        (
            "    resources:\n      cpuShares: 1\n",
            "containers[1].resources.cpuShares",
        ),
        (
            "    resources:\n      memory: 1k\n",
            "containers[1].resources.memory",
        ),
        ("    env: [NOEQUALS]\n", "containers[1].env"),
        ("    env: {\"\": x}\n", "containers[1].env[0]"),
        ("    command: []\n", "containers[1].command"),
        ("    workingDir: rel\n", "containers[1].workingDir"),
    ];
    for (extra, path) in cases {
        let e = err_yaml(&one_container(extra));
        assert!(e.starts_with(&format!("{path}:")), "{extra:?} -> {e}");
    }
}

#[test]
fn document_level_errors() {
    let cases = [
        (
            r#"{"name":"Bad_Name","containers":[{"name":"c","image":"i"}]}"#,
            "name",
        ),
        (r#"{"name":"p","containers":[]}"#, "containers"),
        (
            r#"{"name":"p","containers":[{"name":"c","image":"i"},{"name":"c","image":"i"}]}"#,
            "containers[1].name",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"protocol":"icmp"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].protocol",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostPort":70000}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].hostPort",
        ),
        (
            r#"{"name":"p","hostname":"a_b","containers":[{"name":"c","image":"i"}]}"#,
            "hostname",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostPort":80,"hostIP":"10.0.0.256"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].hostIP",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostPort":80,"hostIP":"eth0"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].hostIP",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostPort":80},{"containerPort":2,"hostPort":81,"hostIP":"224.0.0.1"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[1].hostIP",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostPort":80,"hostIP":"255.255.255.255"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].hostIP",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostPort":80,"hostIP":"ff02::1"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].hostIP",
        ),
        (
            r#"{"name":"p","ports":[{"containerPort":1,"hostIP":"192.0.2.1"}],"containers":[{"name":"c","image":"i"}]}"#,
            "ports[0].hostIP",
        ),
        (r#"{"name":"p"}"#, "."),
    ];
    for (doc, path) in cases {
        let e = PodSpec::from_json(doc).unwrap_err();
        assert_eq!(e.path, path, "{doc} -> {e}");
    }
}

#[test]
fn memory_units() {
    let cases = [
        ("1048576", 1 << 20),
        ("64Mi", 64 << 20),
        ("64MiB", 64 << 20),
        ("1G", 1_000_000_000),
        ("1Gi", 1 << 30),
        ("512k", 512_000),
        ("1.5Gi", 3 << 29),
        ("100M", 100_000_000),
    ];
    for (s, want) in cases {
        assert_eq!(MemorySize::parse(s), Ok(MemorySize(want)), "{s}");
    }
    for bad in ["", "Mi", "12Q", "-1", "1..2G", "99999999999999999999Gi"] {
        assert!(MemorySize::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn cpusets() {
    assert_eq!(CpuSet::parse("0").unwrap().to_string(), "0");
    assert_eq!(CpuSet::parse("3,0-1,2").unwrap().to_string(), "0-3");
    assert_eq!(CpuSet::parse("0-1, 4").unwrap().cpus, vec![0, 1, 4]);
    for bad in ["", "a", "1-", "3-1", "0,,1", "99999"] {
        assert!(CpuSet::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn host_ip_is_passed_as_portmap_expects_and_its_family_checked() {
    let s = PodSpec::from_yaml(
        "name: p\nports:\n  - {containerPort: 80, hostPort: 8080, hostIP: 192.0.2.1}\n  \
         - {containerPort: 81, hostPort: 8081, hostIP: '2001:db8::1'}\n  \
         - {containerPort: 82, hostPort: 8082}\ncontainers:\n  - {name: c, image: i}\n",
    )
    .unwrap();
    let pm = s.port_mappings();
    assert_eq!(pm[0]["hostIP"], "192.0.2.1");
    assert_eq!(pm[1]["hostIP"], "2001:db8::1");
    assert!(pm[2].get("hostIP").is_none());
    let v4: IpAddr = "10.88.1.2".parse().unwrap();
    let v6: IpAddr = "fd00::2".parse().unwrap();
    s.check_host_ip_families(&[v4, v6]).unwrap();
    let e = s.check_host_ip_families(&[v4]).unwrap_err();
    assert_eq!(e.path, "ports[1].hostIP");
    assert!(
        e.msg
            .contains("is IPv6 but the pod has only IPv4 addresses (10.88.1.2)"),
        "{e}"
    );
    let e = s.check_host_ip_families(&[v6]).unwrap_err();
    assert_eq!(e.path, "ports[0].hostIP");
    let e = PodSpec::from_json(
        r#"{"name":"p","ports":[{"containerPort":1,"hostPort":80,"hostIP":"10.0.0.256"}],"containers":[{"name":"c","image":"i"}]}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ports[0].hostIP: invalid IP address syntax"),
        "{e}"
    );
}
