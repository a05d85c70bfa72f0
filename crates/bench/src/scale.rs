//! Many whole processes at once: starts every command together, waits for all,
//! and reports the wall time, each process's own time and the failures.

use std::process::{Command, Stdio};
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
    /// The standard output of each process that exited successfully.
    pub outputs: Vec<Vec<u8>>,
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

/// Starts every command at once (stdout kept, stderr kept for failures) and waits for all of them, each on its own thread so that its exit time is
/// its own.
pub fn run_all(commands: Vec<Command>) -> Batch {
    let started = Instant::now();
    let mut waiting = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for mut cmd in commands {
        let t = Instant::now();
        match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(child) => {
                let what = format!("{cmd:?}");
                waiting.push(std::thread::spawn(move || {
                    let out = child.wait_with_output();
                    let elapsed = t.elapsed();
                    match out {
                        Ok(o) if o.status.success() => (elapsed, Ok(o.stdout)),
                        Ok(o) => (
                            elapsed,
                            Err(format!(
                                "{what} exited {}:\n{}",
                                o.status,
                                String::from_utf8_lossy(&o.stderr)
                            )),
                        ),
                        Err(e) => (elapsed, Err(format!("{what}: {e}"))),
                    }
                }));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{cmd:?}: {e}"));
            }
        }
    }
    let mut each = Vec::new();
    let mut outputs = Vec::new();
    for handle in waiting {
        match handle.join() {
            Ok((elapsed, result)) => {
                each.push(elapsed);
                match result {
                    Ok(stdout) => outputs.push(stdout),
                    Err(f) => {
                        errors += 1;
                        first_error.get_or_insert(f);
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
        outputs,
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
        assert!(batch.summary().ends_with("2 errors"), "{}", batch.summary());
    }
}
