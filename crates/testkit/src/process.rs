//! One long-running server process (etcd, kube-apiserver, kube-controller-manager).
//!
//! Each server runs in its own process group (`process_group(0)`, so its pid is
//! the group id) with stdout and stderr going to a log file. Stopping sends
//! SIGTERM to the whole group, waits a short grace period, then SIGKILLs the
//! group, so nothing the server forked survives it. Signals are sent with the
//! `kill` command rather than a libc call because the workspace forbids `unsafe`.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::KitError;
use crate::ports::log_says_port_in_use;

/// How many log lines errors quote.
pub(crate) const LOG_TAIL_LINES: usize = 20;

/// A server process the kit started and must stop.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    child: Child,
    log: PathBuf,
    ports: Vec<u16>,
    stopped: bool,
}

impl ServerProcess {
    /// Starts `program args…` in a new process group, logging to `log`.
    ///
    /// `ports` are the loopback ports it was told to bind, used to turn an
    /// "address already in use" exit into [`KitError::PortInUse`].
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        ports: &[u16],
    ) -> Result<Self, KitError> {
        let out = File::create(log)
            .map_err(|e| KitError::io(format!("creating log file {}", log.display()), e))?;
        let child = start(program, args, log, out)?;
        tracing::debug!(server = name, pid = child.id(), "started");
        Ok(Self {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            child,
            log: log.to_path_buf(),
            ports: ports.to_vec(),
            stopped: false,
        })
    }

    /// Starts a stopped server again: the same program and arguments (so the
    /// same ports and data), in a new process group, its output appended to the
    /// same log. Returns the new pid. Stop it first ([`ServerProcess::stop`]).
    pub(crate) fn respawn(&mut self) -> Result<u32, KitError> {
        if !self.stopped {
            return Err(KitError::io(
                format!("starting {} again", self.name),
                std::io::Error::other("it is still running; stop it first"),
            ));
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| KitError::io(format!("opening log file {}", self.log.display()), e))?;
        self.child = start(&self.program, &self.args, &self.log, out)?;
        self.stopped = false;
        tracing::debug!(server = %self.name, pid = self.child.id(), "started again");
        Ok(self.child.id())
    }

    /// The process id (also its process-group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's name, e.g. `etcd`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Returns an error if the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), KitError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exit_error(status)),
            Err(e) => Err(KitError::io(format!("checking on {}", self.name), e)),
        }
    }

    /// A readiness timeout error quoting the log.
    pub(crate) fn not_ready(&self, timeout: Duration, last_error: String) -> KitError {
        KitError::NotReady {
            component: self.name.clone(),
            timeout,
            last_error,
            log: self.log.clone(),
            log_tail: log_tail(&self.log, LOG_TAIL_LINES),
        }
    }

    fn exit_error(&self, status: ExitStatus) -> KitError {
        let tail = log_tail(&self.log, LOG_TAIL_LINES);
        if log_says_port_in_use(&tail) {
            let port = self
                .ports
                .iter()
                .copied()
                .find(|p| tail.contains(&format!(":{p}")))
                .or_else(|| self.ports.first().copied())
                .unwrap_or(0);
            return KitError::PortInUse {
                component: self.name.clone(),
                port,
            };
        }
        KitError::ProcessExited {
            component: self.name.clone(),
            status: status.to_string(),
            log: self.log.clone(),
            log_tail: tail,
        }
    }

    /// Stops the whole process group: SIGTERM, up to `grace` to exit, then SIGKILL.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.child.id();
        if let Ok(None) = self.child.try_wait() {
            signal_group(pgid, "TERM");
            let deadline = Instant::now() + grace;
            loop {
                match self.child.try_wait() {
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok(Some(_)) => break,
                    _ => {
                        tracing::debug!(server = %self.name, "did not stop on SIGTERM; killing");
                        signal_group(pgid, "KILL");
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        break;
                    }
                }
            }
        }
        // Anything else left in the group (servers here do not fork, but be sure).
        signal_group(pgid, "KILL");
        tracing::debug!(server = %self.name, pid = pgid, "stopped");
    }
}

/// `program args…` in a new process group, stdout and stderr to `out`.
fn start(program: &Path, args: &[String], log: &Path, out: File) -> Result<Child, KitError> {
    let err = out
        .try_clone()
        .map_err(|e| KitError::io(format!("duplicating log file {}", log.display()), e))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| KitError::Spawn {
            program: program.display().to_string(),
            source,
        })
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Sends `signal` (a name such as `TERM`) to every process in group `pgid`; errors
/// (typically "no such process") are ignored.
pub(crate) fn signal_group(pgid: u32, signal: &str) {
    signal_target(&format!("-{pgid}"), signal);
}

/// Sends `signal` to one process; errors are ignored.
pub(crate) fn signal_pid(pid: u32, signal: &str) {
    signal_target(&pid.to_string(), signal);
}

fn signal_target(target: &str, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether process `pid` exists (zombies included).
pub(crate) fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The last `lines` lines of a log file (empty when it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    tail_lines(&text, lines)
}

/// The last `lines` lines of `text`, each indented for quoting in an error.
pub(crate) fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let text = (1..=30).map(|i| format!("line {i}\n")).collect::<String>();
        let tail = tail_lines(&text, 3);
        assert_eq!(tail, "    line 28\n    line 29\n    line 30");
    }

    #[test]
    fn stop_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sh.log");
        let pidfile = dir.path().join("child.pid");
        // A shell that forks a grandchild sleeping in the same group, and ignores TERM.
        let mut server = ServerProcess::spawn(
            "sleeper",
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                format!(
                    "trap '' TERM; sleep 300 & echo $! > '{}'; wait",
                    pidfile.display()
                ),
            ],
            &log,
            &[],
        )
        .expect("spawn");
        let started = Instant::now();
        let grandchild = loop {
            if let Ok(text) = std::fs::read_to_string(&pidfile)
                && let Ok(pid) = text.trim().parse::<u32>()
            {
                break pid;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no child.pid");
            std::thread::sleep(Duration::from_millis(20));
        };
        server.check_running().expect("running");
        server.stop(Duration::from_millis(200));
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_alive(grandchild) && !is_zombie(grandchild) {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_zombie(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
            .unwrap_or(false)
    }

    #[test]
    fn exit_with_bind_error_is_port_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("fake.log");
        let mut server = ServerProcess::spawn(
            "fake",
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "echo 'listen tcp 127.0.0.1:4242: bind: address already in use'; exit 1".into(),
            ],
            &log,
            &[4141, 4242],
        )
        .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            if let Err(e) = server.check_running() {
                break e;
            }
            assert!(Instant::now() < deadline, "fake server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        match err {
            KitError::PortInUse { component, port } => {
                assert_eq!(component, "fake");
                assert_eq!(port, 4242);
            }
            other => panic!("unexpected error: {other}"),
        }
    }
}
