//! A throwaway PostgreSQL cluster on a loopback port.
//!
//! [`TestPostgres::start`] runs Debian's server binaries (see
//! [`bins::pg_bin_dir`](crate::bins::pg_bin_dir)): `initdb -A trust -U postgres`
//! into a temp dir, then `pg_ctl -w start` with the socket in the temp dir and TCP
//! on `127.0.0.1:PORT` only. PostgreSQL refuses to run as root, so when the test
//! runs as root the temp dir is `chown`ed to the `postgres` user and every command
//! runs under `runuser -u postgres --`; otherwise they run as the current user.
//!
//! [`TestPostgres::start_with_password_auth`] starts one where TCP logins of
//! every role but `postgres` need their password (`scram-sha-256` in
//! `pg_hba.conf`), for tests of what a role's credentials can and cannot do.
//!
//! Durability settings are off (`fsync`, `synchronous_commit`, `full_page_writes`)
//! because the data is thrown away; a crash of the *server process* still loses
//! nothing that was committed, only an operating-system crash could.
//!
//! [`TestPostgres::stop`] and [`TestPostgres::start_again`] restart the server
//! on the same port and data (fault tests).
//!
//! Dropping stops the server with `pg_ctl stop -m immediate` and removes the dir;
//! if the test process dies first, the kit's watchdog SIGQUITs the postmaster (the
//! pid in `data/postmaster.pid`) and removes the dir.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::sync::OnceCell;

use crate::cluster::run;
use crate::scratch::Scratch;
use crate::{KitError, bins, ports};

const START_ATTEMPTS: usize = 3;

/// A running PostgreSQL server. Dropping it stops the server and removes its data.
#[derive(Debug)]
pub struct TestPostgres {
    scratch: Scratch,
    port: u16,
    /// How [`TestPostgres::start_again`] runs `pg_ctl start` as the first start did.
    restart: Restart,
}

/// What `pg_ctl` needs to stop and start the same server again.
#[derive(Debug, Clone)]
struct Restart {
    as_postgres: bool,
    pg_ctl: PathBuf,
    data: PathBuf,
    options: String,
    log: PathBuf,
}

static SHARED: OnceCell<TestPostgres> = OnceCell::const_new();

impl TestPostgres {
    /// Initialises and starts a new server on a free port.
    pub async fn start() -> Result<TestPostgres, KitError> {
        Self::start_with(false, None).await
    }

    /// Like [`TestPostgres::start`], with `max_connections` set to `n` (the
    /// server's default is 100), for benchmarks that connect from hundreds of
    /// processes at once.
    pub async fn start_with_max_connections(n: u32) -> Result<TestPostgres, KitError> {
        Self::start_with(false, Some(n)).await
    }

    /// Like [`TestPostgres::start`], but TCP logins of roles other than
    /// `postgres` are checked with `scram-sha-256` (the `postgres` superuser
    /// and Unix-socket logins stay `trust`).
    pub async fn start_with_password_auth() -> Result<TestPostgres, KitError> {
        Self::start_with(true, None).await
    }

    async fn start_with(
        password_auth: bool,
        max_connections: Option<u32>,
    ) -> Result<TestPostgres, KitError> {
        let bin = bins::pg_bin_dir()?;
        let as_postgres = running_as_root();
        let mut scratch = Scratch::new("testkit-postgres-", Some("data/postmaster.pid"))?;
        let dir = scratch.path().to_path_buf();
        if as_postgres {
            run(tokio::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir))
            .await?;
        }
        let data = dir.join("data");
        run(pg_command(as_postgres, &bin.join("initdb"), &dir)
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ]))
        .await?;
        if password_auth {
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 host all postgres 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 scram-sha-256\n",
            )
            .map_err(|source| KitError::Io {
                context: format!("writing {}", data.join("pg_hba.conf").display()),
                source,
            })?;
        }

        // From here on, make sure a started server is stopped however we leave.
        let pg_ctl = bin.join("pg_ctl");
        {
            let (pg_ctl, data, dir) = (pg_ctl.clone(), data.clone(), dir.clone());
            scratch.on_drop(move || stop_server(as_postgres, &pg_ctl, &data, &dir));
        }

        let log = dir.join("postgres.log");
        let mut attempt = 1;
        let (port, options) = loop {
            let port = ports::free_port()?;
            let mut options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                dir.display()
            );
            if let Some(n) = max_connections {
                options.push_str(&format!(" -c max_connections={n}"));
            }
            let started = run(pg_command(as_postgres, &pg_ctl, &dir)
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(&options)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"]))
            .await;
            match started {
                Ok(()) => break (port, options),
                Err(e) => {
                    let tail = crate::process::log_tail(&log, crate::process::LOG_TAIL_LINES);
                    if crate::ports::log_says_port_in_use(&tail) {
                        if attempt < START_ATTEMPTS {
                            tracing::warn!(port, attempt, "PostgreSQL port taken; retrying");
                            attempt += 1;
                            continue;
                        }
                        return Err(KitError::PortInUse {
                            component: "postgres".into(),
                            port,
                        });
                    }
                    return Err(match e {
                        KitError::Command {
                            command, status, ..
                        } => KitError::ProcessExited {
                            component: format!("postgres ({command})"),
                            status,
                            log: log.clone(),
                            log_tail: tail,
                        },
                        other => other,
                    });
                }
            }
        };
        tracing::info!(port, dir = %dir.display(), "test PostgreSQL ready");
        Ok(TestPostgres {
            scratch,
            port,
            restart: Restart {
                as_postgres,
                pg_ctl,
                data,
                options,
                log,
            },
        })
    }

    /// Stops the server with `pg_ctl stop -m fast`, as an operator's restart
    /// or a failover does: every session is terminated (open transactions roll
    /// back, clients see their connection closed) and new connections are
    /// refused until [`TestPostgres::start_again`].
    pub async fn stop(&self) -> Result<(), KitError> {
        let r = &self.restart;
        run(pg_command(r.as_postgres, &r.pg_ctl, self.scratch.path())
            .arg("-D")
            .arg(&r.data)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]))
        .await?;
        tracing::info!(port = self.port, "test PostgreSQL stopped");
        Ok(())
    }

    /// Starts the server stopped by [`TestPostgres::stop`] again on the same
    /// port and data, with the same settings; returns once it accepts
    /// connections.
    pub async fn start_again(&self) -> Result<(), KitError> {
        let r = &self.restart;
        run(pg_command(r.as_postgres, &r.pg_ctl, self.scratch.path())
            .arg("-D")
            .arg(&r.data)
            .arg("-o")
            .arg(&r.options)
            .arg("-l")
            .arg(&r.log)
            .args(["-w", "-t", "60", "start"]))
        .await?;
        tracing::info!(port = self.port, "test PostgreSQL started again");
        Ok(())
    }

    /// One process-wide server, started on first use and shared by every test in
    /// the binary; stopped by the kit's watchdog when the test process exits.
    pub async fn shared() -> Result<&'static TestPostgres, KitError> {
        SHARED.get_or_try_init(Self::start).await
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq key/value connection string for the `postgres` superuser.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// The same as a URL: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A URL for another database on this server.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A libpq key/value connection string logging in as `user` with
    /// `password` to `database` (values quoted for libpq).
    pub fn conninfo_as(&self, user: &str, password: &str, database: &str) -> String {
        let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host=127.0.0.1 port={} user={} password={} dbname={}",
            self.port,
            q(user),
            q(password),
            q(database)
        )
    }

    /// Connects as `postgres` to database `postgres`. The connection task runs on
    /// the calling tokio runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client, KitError> {
        let (client, connection) =
            tokio_postgres::connect(&self.connection_string(), tokio_postgres::NoTls)
                .await
                .map_err(|source| KitError::Postgres {
                    context: format!("connecting to {}", self.url()),
                    source,
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "test PostgreSQL connection closed");
            }
        });
        Ok(client)
    }

    /// The temp dir (data in `data/`, log in `postgres.log`, the Unix socket).
    pub fn temp_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.scratch.path().join("postgres.log")
    }
}

/// Whether the effective user is root (the owner of `/proc/self` is the euid).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A command for a PostgreSQL binary, run as `postgres` when we are root.
fn pg_command(as_postgres: bool, program: &Path, cwd: &Path) -> tokio::process::Command {
    let mut command = if as_postgres {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    };
    command.current_dir(cwd);
    command
}

/// `pg_ctl stop -m immediate`, then SIGKILL for a postmaster that is still there.
fn stop_server(as_postgres: bool, pg_ctl: &Path, data: &Path, cwd: &Path) {
    let pid_file = data.join("postmaster.pid");
    let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    else {
        return; // never started, or already stopped
    };
    let mut command = if as_postgres {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_ctl);
        c
    } else {
        std::process::Command::new(pg_ctl)
    };
    let stopped = command
        .current_dir(cwd)
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w", "-t", "10", "stop"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !stopped && crate::process::pid_alive(pid) {
        crate::process::signal_pid(pid, "KILL");
    }
}
