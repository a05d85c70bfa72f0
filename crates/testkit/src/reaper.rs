//! A watchdog that cleans up after the test process even when it dies abruptly.
//!
//! Statics are never dropped, a test binary can panic, abort or be SIGKILLed,
//! and the workspace forbids the `unsafe` needed for `prctl(PR_SET_PDEATHSIG)`.
//! So every [`Scratch`](crate::scratch::Scratch) starts one small `sh` watchdog
//! in its own process group, whose stdin is a pipe from the test process:
//!
//! * the test process writes `group <pgid>` for each server it starts;
//! * when the owner is dropped normally it cleans up itself and writes `disarm`,
//!   and the watchdog exits doing nothing;
//! * when the test process ends in any other way the kernel closes the pipe, the
//!   watchdog reads end-of-file, SIGTERMs every registered group (and SIGQUITs the
//!   PostgreSQL postmaster named in the pid file, if any), waits up to 5 s,
//!   SIGKILLs what is left, deletes the network namespaces registered with
//!   `netns <name>` ([`crate::netcut`]) and removes the temp dir.
//!
//! The pipe's write end is close-on-exec, so no other child keeps it open. The
//! watchdog ignores SIGINT/SIGHUP/SIGTERM, so Ctrl-C on the test run does not kill
//! it before it has cleaned up.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::KitError;

/// The watchdog script; `$1` is the temp dir, `$2` an optional postmaster pid file.
const SCRIPT: &str = r#"
trap '' INT HUP TERM QUIT PIPE
dir=$1
pidfile=$2
groups=
nets=
while read -r kind arg; do
  case $kind in
    group) groups="$groups $arg" ;;
    netns) nets="$nets $arg" ;;
    disarm) exit 0 ;;
  esac
done
pm=
if [ -n "$pidfile" ] && [ -f "$pidfile" ]; then pm=$(head -n 1 "$pidfile"); fi
if [ -n "$pm" ]; then kill -s QUIT "$pm" 2>/dev/null; fi
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
n=0
while [ "$n" -lt 50 ]; do
  alive=
  for g in $groups; do kill -s 0 -- "-$g" 2>/dev/null && alive=1; done
  if [ -n "$pm" ] && kill -s 0 "$pm" 2>/dev/null; then alive=1; fi
  [ -z "$alive" ] && break
  sleep 0.1
  n=$((n + 1))
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
if [ -n "$pm" ]; then kill -s KILL "$pm" 2>/dev/null; fi
for n in $nets; do ip netns del "$n" 2>/dev/null; done
if [ -n "$dir" ]; then rm -rf -- "$dir"; fi
exit 0
"#;

/// The watchdog process and the write end of its stdin.
#[derive(Debug)]
pub(crate) struct Reaper {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Reaper {
    /// Starts a watchdog for `dir` (removed on abnormal exit) and, optionally, a
    /// PostgreSQL `postmaster.pid` file whose first line is the pid to stop.
    pub(crate) fn spawn(dir: &Path, pidfile: Option<&Path>) -> Result<Self, KitError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("testkit-reaper")
            .arg(dir)
            .arg(pidfile.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| KitError::Spawn {
                program: "sh (testkit reaper)".into(),
                source,
            })?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    /// Registers a process group the watchdog must kill if the test process dies.
    pub(crate) fn watch_group(&mut self, pgid: u32) -> Result<(), KitError> {
        self.send(&format!("group {pgid}\n"))
    }

    /// Registers a network namespace the watchdog must delete if the test process dies.
    pub(crate) fn watch_netns(&mut self, name: &str) -> Result<(), KitError> {
        self.send(&format!("netns {name}\n"))
    }

    fn send(&mut self, line: &str) -> Result<(), KitError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            KitError::io(
                "talking to the reaper",
                std::io::Error::other("already disarmed"),
            )
        })?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| KitError::io("talking to the reaper process", e))
    }

    /// Tells the watchdog that the owner cleaned up itself, and waits for it to exit.
    pub(crate) fn disarm(&mut self) {
        if self.stdin.is_none() {
            return;
        }
        let _ = self.send("disarm\n");
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(Some(_)) => return,
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Not disarmed: closing stdin makes the watchdog clean up, like a crash would.
        self.stdin = None;
        let _ = self.child.try_wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::pid_alive;

    /// A `sleep 300` leading its own process group.
    fn sleeper_group() -> Child {
        Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("sleep")
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn closing_the_pipe_kills_groups_and_removes_the_dir() {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut reaper = Reaper::spawn(&dir, None).expect("reaper");
        let mut sleeper = sleeper_group();
        reaper.watch_group(sleeper.id()).expect("register");
        drop(reaper); // as if the test process had died
        wait_until("sleeper to die", || {
            matches!(sleeper.try_wait(), Ok(Some(_)))
        });
        wait_until("dir removal", || !dir.exists());
    }

    #[test]
    fn closing_the_pipe_deletes_registered_network_namespaces() {
        let name = format!("testkit-reaper-{}", std::process::id());
        let listed = || {
            let out = Command::new("ip")
                .args(["netns", "list"])
                .output()
                .expect("ip netns list");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name.as_str()))
        };
        let added = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(added.success());
        assert!(listed());
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut reaper = Reaper::spawn(&dir, None).expect("reaper");
        reaper.watch_netns(&name).expect("register");
        drop(reaper); // as if the test process had died
        wait_until("namespace deletion", || !listed());
        wait_until("dir removal", || !dir.exists());
    }

    #[test]
    fn disarm_leaves_everything_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut reaper = Reaper::spawn(dir.path(), None).expect("reaper");
        let mut sleeper = sleeper_group();
        reaper.watch_group(sleeper.id()).expect("register");
        let reaper_pid = reaper.child.id();
        reaper.disarm();
        assert!(!pid_alive(reaper_pid) || matches!(reaper.child.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(200));
        assert!(matches!(sleeper.try_wait(), Ok(None)), "sleeper must live");
        assert!(dir.path().exists());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
}
