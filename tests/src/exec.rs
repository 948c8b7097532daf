//! Running commands with captured output and a timeout, optionally inside a
//! network namespace through `nsenter --net=` (not `ip netns exec`, which
//! remounts /sys; see reference/client-facts.md).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Default limit for one command: long enough for a slow CNI ADD on a busy
/// CI machine, short enough that a hung plugin fails the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command produced.
#[derive(Debug)]
pub struct CmdOutput {
    /// Human-readable command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CmdOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panic with the full output unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }
}

impl std::fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A `Command` that runs `argv` inside the network namespace at `netns`.
pub fn nsenter(netns: &Path, argv: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).arg("--");
    cmd.args(argv);
    cmd
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn reader<R: Read + Send + 'static>(src: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut src) = src {
            let _ = src.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Wait for `child`, killing it (by its PID, through `Child::kill`) when
/// `timeout` passes.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let status = child.wait().expect("wait for killed child");
                return (status, true);
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Run `cmd` to completion, feeding `stdin`, capturing stdout and stderr.
/// Panics only when the command cannot be started; a non-zero exit is
/// reported in the returned status. A timeout kills the process and is
/// reported in `stderr`.
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> CmdOutput {
    let command = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A plugin may exit without reading stdin; a broken pipe is not ours
        // to report.
        let _ = pipe.write_all(data);
    }
    let (status, timed_out) = wait_with_timeout(&mut child, timeout);
    let mut stderr = err.join().unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!("\n[harness] killed after timeout {timeout:?}"));
    }
    CmdOutput {
        command,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr,
        elapsed: start.elapsed(),
    }
}

/// Run `argv` (in the root namespace) with the default timeout.
pub fn run_argv(argv: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    run(cmd, None, DEFAULT_TIMEOUT)
}
