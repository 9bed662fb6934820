//! Plugin processes a test starts in the background: each one dies with the test — killed when
//! its guard drops (also when the test panics) and, through `PR_SET_PDEATHSIG`, when the test
//! process dies — and its output is read by threads as it comes, so that every wait (for a line,
//! for the exit) has a deadline and a broken run fails instead of hanging.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any plugin run may take before the test fails: far above every command's own
/// deadline, far below CI's budget.
pub const PLUGIN_DEADLINE: Duration = Duration::from_secs(300);

/// A running plugin process (see the module doc).
pub struct Running {
    child: Child,
    what: String,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn drain(mut r: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Running {
    /// Starts `cmd` (its stdin closed, stdout and stderr captured); `what` names it in failures.
    pub fn spawn(mut cmd: Command, what: &str) -> Running {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        crate::process::dies_with_test(&mut cmd);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers =
            vec![drain(child.stdout.take().unwrap(), out.clone()), drain(child.stderr.take().unwrap(), err.clone())];
        Running { child, what: what.to_string(), out, err, readers, status: None }
    }

    /// Its process ID.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What it has written to stdout so far.
    pub fn stdout_now(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// What it has written to stderr so far.
    pub fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits until its stderr contains `needle` (returns all of stderr so far); panics after
    /// `timeout`, or when it exits without having written it.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_output(needle, timeout, true)
    }

    /// Waits until its stdout contains `needle`, as [`Running::wait_stderr`].
    pub fn wait_stdout(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_output(needle, timeout, false)
    }

    fn wait_output(&mut self, needle: &str, timeout: Duration, stderr: bool) -> String {
        let start = Instant::now();
        loop {
            let text = if stderr { self.stderr_now() } else { self.stdout_now() };
            if text.contains(needle) {
                return text;
            }
            let exited = self.status.is_some() || self.child.try_wait().ok().flatten().is_some();
            assert!(
                !exited && start.elapsed() < timeout,
                "{} {} without writing {needle:?} (waited {:?})\nstdout:\n{}\nstderr:\n{}",
                self.what,
                if exited { "exited" } else { "ran on" },
                start.elapsed(),
                self.stdout_now(),
                self.stderr_now()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends it a signal.
    pub fn signal(&self, sig: i32) {
        crate::process::signal(self.pid(), sig);
    }

    /// Whether it has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_some()
    }

    /// Waits for it to exit and returns its output; kills it and panics after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let start = Instant::now();
        while !self.exited() {
            if start.elapsed() >= timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {timeout:?}: killed\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.stdout_now(),
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status: self.status.expect("exited"),
            stdout: std::mem::take(&mut *self.out.lock().unwrap()),
            stderr: std::mem::take(&mut *self.err.lock().unwrap()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts a plugin in the background with [`crate::plugin_command`]'s clean environment.
pub fn spawn_plugin(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Running {
    Running::spawn(crate::plugin_command(name, args, envs), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_child_fails_within_its_deadline_and_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let r = Running::spawn(cmd, "sleep 60");
        let pid = r.pid();
        let start = Instant::now();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.wait(Duration::from_millis(300))));
        assert!(caught.is_err(), "wait must fail past its deadline");
        assert!(start.elapsed() < Duration::from_secs(5));
        // SAFETY: kill(pid, 0) only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the child was killed");
    }

    #[test]
    fn lines_are_waited_for_and_a_dropped_guard_kills() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready >&2; sleep 60"]);
        let mut r = Running::spawn(cmd, "sh");
        assert!(r.wait_stderr("ready", Duration::from_secs(10)).contains("ready"));
        let pid = r.pid();
        drop(r);
        // SAFETY: as above.
        assert!(unsafe { libc::kill(pid, 0) } != 0, "dropping the guard kills the child");
    }
}
