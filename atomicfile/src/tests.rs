use super::*;
use std::os::unix::fs::PermissionsExt;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn replace_writes_and_overwrites_leaving_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.json");
    Options::new().replace(&p, b"one").unwrap();
    Options::new().durable(true).replace(&p, b"two").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(names(dir.path()), ["a.json"]);
}

#[test]
fn mode_is_applied_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    Options::new().replace(&p, b"x").unwrap();
    assert_eq!(mode_of(&p), 0o600);
    // Group and other write bits: what the usual umask (022) clears.
    Options::new().mode(0o666).replace(&p, b"x").unwrap();
    assert_eq!(mode_of(&p), 0o666);
    let q = dir.path().join("g");
    assert!(Options::new().mode(0o644).create_new(&q, b"x").unwrap());
    assert_eq!(mode_of(&q), 0o644);
}

#[test]
fn create_new_refuses_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("10.2.1.5");
    assert!(Options::new().create_new(&p, b"first").unwrap());
    assert!(!Options::new()
        .durable(true)
        .create_new(&p, b"second")
        .unwrap());
    assert_eq!(fs::read(&p).unwrap(), b"first");
    assert_eq!(names(dir.path()), ["10.2.1.5"]);
}

#[test]
fn a_failed_write_removes_the_temp_and_names_step_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a");
    fs::write(&p, "old").unwrap();
    let e = Options::new()
        .replace_with(&p, |_| Err(io::Error::other("disk full")))
        .unwrap_err();
    assert_eq!(e.step, Step::Write);
    let tmp = temp_path(&p).unwrap();
    assert_eq!(e.to_string(), format!("write {}", tmp.display()));
    assert_eq!(fs::read(&p).unwrap(), b"old");
    assert_eq!(names(dir.path()), ["a"]);
    let io: io::Error = e.into();
    assert_eq!(
        io.to_string(),
        format!("write {}: disk full", tmp.display())
    );
}

#[test]
fn a_failed_rename_removes_the_temp() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be replaced by a file.
    let p = dir.path().join("d");
    fs::create_dir(&p).unwrap();
    fs::write(p.join("keep"), "").unwrap();
    let e = Options::new().replace(&p, b"x").unwrap_err();
    assert_eq!(e.step, Step::Rename);
    let tmp = temp_path(&p).unwrap();
    assert_eq!(
        e.to_string(),
        format!("rename {} to {}", tmp.display(), p.display())
    );
    assert_eq!(names(dir.path()), ["d"]);
}

#[test]
fn a_missing_directory_fails_at_create() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("no/such/file");
    let e = Options::new().durable(true).replace(&p, b"x").unwrap_err();
    assert_eq!(e.step, Step::Create);
    assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
}

#[test]
fn temp_names_parse_back_and_dead_writers_are_told_apart() {
    let tmp = temp_path(Path::new("/x/c1@eth0.json")).unwrap();
    assert_eq!(
        tmp,
        Path::new(&format!("/x/.c1@eth0.json.tmp-{}", std::process::id()))
    );
    let name = tmp.file_name().unwrap().to_str().unwrap();
    assert_eq!(parse_temp(name), Some(("c1@eth0.json", std::process::id())));
    assert_eq!(dead_writer_temp(name), None, "this process is alive");
    assert_eq!(dead_writer_temp(".a.tmp-999999999"), Some("a"));
    assert_eq!(parse_temp(".a.tmp-x"), None);
    assert_eq!(parse_temp("a.tmp-1"), None);
    assert_eq!(parse_temp("10.2.1.5"), None);
    assert_eq!(
        temp_path(Path::new("f")).unwrap().parent(),
        Some(Path::new("."))
    );
}
