//! Many whole processes at once: starts every command together (or at most
//! `at_once` of them at a time), waits for all, and reports the wall time, each
//! process's own time and the failures.

use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{ms, percentile};

/// The outcome of one concurrent batch.
pub struct Batch {
    /// From the first start to the last exit.
    pub wall: Duration,
    /// Each process's time from its start to its exit, sorted.
    pub each: Vec<Duration>,
    /// Processes that failed to start or exited non-zero.
    pub errors: usize,
    /// The first failure's command and output, for the log.
    pub first_error: Option<String>,
    /// Every failure's command and output.
    pub failures: Vec<String>,
    /// The standard output of each process that exited successfully.
    pub outputs: Vec<Vec<u8>>,
    /// How many ran at most at the same time (the batch size when unlimited).
    pub at_once: usize,
}

impl Batch {
    /// `12.3 s wall; per stack p50 1.2 s, p95 2.3 s; 0 errors`.
    pub fn summary(&self) -> String {
        format!(
            "{:.1} s wall; per stack p50 {}, p95 {}; {} errors",
            self.wall.as_secs_f64(),
            seconds_or_ms(percentile(&self.each, 50)),
            seconds_or_ms(percentile(&self.each, 95)),
            self.errors
        )
    }
}

fn seconds_or_ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        ms(d)
    }
}

/// Starts every command at once and waits for all of them.
#[cfg(test)]
pub fn run_all(commands: Vec<Command>) -> Batch {
    let n = commands.len();
    run_limited(commands, n)
}

/// A counting semaphore: `at_once` slots.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }

    fn release(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.freed.notify_one();
    }
}

/// What became of one process.
enum Outcome {
    /// It could not be started (not timed).
    NotStarted(String),
    /// It ran this long: its standard output, or why it failed.
    Ran(Duration, Result<Vec<u8>, String>),
}

/// Runs every command with at most `at_once` running at the same time (stdout
/// kept, stderr kept for failures); each is waited for on its own thread, so
/// its exit time is its own, and timed from its own start.
pub fn run_limited(commands: Vec<Command>, at_once: usize) -> Batch {
    let at_once = at_once.clamp(1, commands.len().max(1));
    let slots = Arc::new(Slots {
        free: Mutex::new(at_once),
        freed: Condvar::new(),
    });
    let started = Instant::now();
    let mut waiting = Vec::new();
    for mut cmd in commands {
        let slots = slots.clone();
        waiting.push(std::thread::spawn(move || {
            slots.acquire();
            let what = format!("{cmd:?}");
            let t = Instant::now();
            let outcome = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
                Err(e) => Outcome::NotStarted(format!("{what}: {e}")),
                Ok(child) => {
                    let out = child.wait_with_output();
                    let elapsed = t.elapsed();
                    match out {
                        Ok(o) if o.status.success() => Outcome::Ran(elapsed, Ok(o.stdout)),
                        Ok(o) => Outcome::Ran(
                            elapsed,
                            Err(format!(
                                "{what} exited {}:\n{}",
                                o.status,
                                String::from_utf8_lossy(&o.stderr)
                            )),
                        ),
                        Err(e) => Outcome::Ran(elapsed, Err(format!("{what}: {e}"))),
                    }
                }
            };
            slots.release();
            outcome
        }));
    }
    let mut each = Vec::new();
    let mut outputs = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut failures = Vec::new();
    for handle in waiting {
        match handle.join() {
            Ok(Outcome::NotStarted(e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.clone());
                failures.push(e);
            }
            Ok(Outcome::Ran(elapsed, result)) => {
                each.push(elapsed);
                match result {
                    Ok(stdout) => outputs.push(stdout),
                    Err(f) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| f.clone());
                        failures.push(f);
                    }
                }
            }
            Err(_) => {
                errors += 1;
                first_error.get_or_insert_with(|| "a waiting thread panicked".into());
            }
        }
    }
    let wall = started.elapsed();
    each.sort();
    Batch {
        wall,
        each,
        errors,
        first_error,
        failures,
        outputs,
        at_once,
    }
}

/// Runs `cmd` to its end (output discarded) and returns its exit status and
/// its peak resident memory in KiB (`VmHWM`, read from `/proc` every 2 ms
/// while it runs: a lower bound, short of the last 2 ms).
pub fn peak_rss_kib(mut cmd: Command) -> std::io::Result<(std::process::ExitStatus, u64)> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak));
        }
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(crate::synthetic::vm_hwm_kib)
        {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_and_times_each_process() {
        let mut commands = Vec::new();
        for code in [0, 0, 3] {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("echo oops >&2; exit {code}")]);
            commands.push(c);
        }
        commands.push(Command::new("/nonexistent/binary"));
        let batch = run_all(commands);
        assert_eq!(batch.errors, 2);
        assert_eq!(batch.each.len(), 3);
        assert!(batch.first_error.is_some());
        assert_eq!(batch.outputs.len(), 2);
        assert_eq!(batch.at_once, 4);
        assert!(batch.summary().ends_with("2 errors"), "{}", batch.summary());
    }

    #[test]
    fn at_most_n_run_at_once() {
        // Each process holds its slot 200 ms: 6 of them 2 at a time take ≥ 600 ms,
        // all at once well under that.
        let sleepers = |n: usize| -> Vec<Command> {
            (0..n)
                .map(|_| {
                    let mut c = Command::new("sleep");
                    c.arg("0.2");
                    c
                })
                .collect()
        };
        let limited = run_limited(sleepers(6), 2);
        assert_eq!(limited.errors, 0);
        assert_eq!(limited.at_once, 2);
        assert!(
            limited.wall >= Duration::from_millis(600),
            "{:?}",
            limited.wall
        );
        // Each is timed from its own start, not from the batch's.
        assert!(
            limited.each.iter().all(|d| *d < Duration::from_millis(450)),
            "{:?}",
            limited.each
        );
        let all = run_all(sleepers(6));
        assert!(all.wall < Duration::from_millis(550), "{:?}", all.wall);
    }

    #[test]
    fn peak_memory_of_a_child() {
        // `sh` holding a 20 MB string in memory.
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "x=$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 0.1; echo ${#x}",
        ]);
        let (status, kib) = peak_rss_kib(c).expect("runs");
        assert!(status.success());
        assert!(kib > 19_000, "{kib} KiB");
    }
}
