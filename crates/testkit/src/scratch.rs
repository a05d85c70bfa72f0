//! A temp dir plus the server processes that live in it, torn down together.
//!
//! Dropping a [`Scratch`] runs its stop hooks (e.g. `pg_ctl stop`), stops its
//! servers in reverse start order (whole process groups), removes the dir and
//! finally disarms its [`Reaper`]. If the test process dies instead, the reaper
//! does the same from outside. A half-finished start that returns an error drops
//! its `Scratch`, so a failed start leaves no process and no directory behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::KitError;
use crate::process::ServerProcess;
use crate::reaper::Reaper;

/// A cleanup action run before the servers are stopped.
type StopHook = Box<dyn FnOnce() + Send + Sync>;

/// A temp dir, the servers started in it and their watchdog.
pub(crate) struct Scratch {
    servers: Vec<ServerProcess>,
    hooks: Vec<StopHook>,
    reaper: Reaper,
    dir: Option<TempDir>,
    path: PathBuf,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("path", &self.path)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl Scratch {
    /// Creates a temp dir named `<prefix>XXXX` and its watchdog. `pidfile`, relative
    /// to the dir, names a PostgreSQL `postmaster.pid` the watchdog should stop.
    pub(crate) fn new(prefix: &str, pidfile: Option<&str>) -> Result<Self, KitError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| KitError::io("creating a temp dir", e))?;
        let path = dir.path().to_path_buf();
        let pidfile = pidfile.map(|p| path.join(p));
        let reaper = Reaper::spawn(&path, pidfile.as_deref())?;
        Ok(Self {
            servers: Vec::new(),
            hooks: Vec::new(),
            reaper,
            dir: Some(dir),
            path,
        })
    }

    /// The temp dir.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a server in its own process group and registers it with the watchdog.
    /// Returns its index for [`Scratch::server`].
    pub(crate) fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        ports: &[u16],
    ) -> Result<usize, KitError> {
        let log = self.path.join(format!("{name}.log"));
        let server = ServerProcess::spawn(name, program, args, &log, ports)?;
        let pid = server.pid();
        self.servers.push(server);
        self.reaper.watch_group(pid)?;
        Ok(self.servers.len() - 1)
    }

    /// A server started with [`Scratch::spawn`].
    pub(crate) fn server(&mut self, index: usize) -> Option<&mut ServerProcess> {
        self.servers.get_mut(index)
    }

    /// Stops server `index` (SIGTERM, up to `grace`, then SIGKILL: the whole group).
    pub(crate) fn stop_server(&mut self, index: usize, grace: Duration) -> Result<(), KitError> {
        self.server_at(index)?.stop(grace);
        Ok(())
    }

    /// Starts stopped server `index` again with the same program and arguments,
    /// and registers its new process group with the watchdog.
    pub(crate) fn respawn_server(&mut self, index: usize) -> Result<(), KitError> {
        let pid = self.server_at(index)?.respawn()?;
        self.reaper.watch_group(pid)
    }

    /// Has the watchdog delete network namespace `name` if the test process dies.
    pub(crate) fn watch_netns(&mut self, name: &str) -> Result<(), KitError> {
        self.reaper.watch_netns(name)
    }

    fn server_at(&mut self, index: usize) -> Result<&mut ServerProcess, KitError> {
        self.servers.get_mut(index).ok_or_else(|| {
            KitError::io(
                "finding a server",
                std::io::Error::other(format!("no server with index {index}")),
            )
        })
    }

    /// Process ids of the running servers, with their names.
    pub(crate) fn pids(&self) -> Vec<(String, u32)> {
        self.servers
            .iter()
            .map(|s| (s.name().to_string(), s.pid()))
            .collect()
    }

    /// Adds a cleanup action run (once, first) on drop.
    pub(crate) fn on_drop(&mut self, hook: impl FnOnce() + Send + Sync + 'static) {
        self.hooks.push(Box::new(hook));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for hook in std::mem::take(&mut self.hooks) {
            hook();
        }
        while let Some(mut server) = self.servers.pop() {
            server.stop(Duration::from_secs(5));
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            tracing::warn!(dir = %self.path.display(), error = %e, "could not remove temp dir");
            // Let the watchdog try.
            return;
        }
        self.reaper.disarm();
    }
}
