//! The test kit's error type.
//!
//! Every variant renders as one line that says what failed and, where there is
//! one, how to fix it. Start-up failures of a server process append the tail of
//! that process's log on the following lines, because the first line alone
//! rarely explains why etcd or the API server gave up.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting or using the test kit.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// A binary the kit needs is not installed.
    #[error("`{binary}` not found (looked in {searched}); run `scripts/control-plane.sh install`")]
    MissingBinary {
        /// The binary's file name, e.g. `kube-apiserver`.
        binary: String,
        /// Where the kit looked, in order.
        searched: String,
    },

    /// The kernel would not hand out a free loopback port.
    #[error("could not reserve a free port on 127.0.0.1: {0}")]
    NoFreePort(#[source] std::io::Error),

    /// A server could not bind its port because something else took it first.
    #[error(
        "{component} could not listen on 127.0.0.1:{port}: address already in use (another process took the port between reservation and start; retry)"
    )]
    PortInUse {
        /// Which server failed (`etcd`, `kube-apiserver`, `postgres`).
        component: String,
        /// The port it tried to bind.
        port: u16,
    },

    /// A process could not be spawned at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A server process exited while the kit was waiting for it to become ready.
    #[error("{component} exited during start-up ({status}); last lines of {log}:\n{log_tail}")]
    ProcessExited {
        /// Which server exited.
        component: String,
        /// Its exit status.
        status: String,
        /// Where its full log is (removed with the temp dir).
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },

    /// A server did not become ready in time.
    #[error(
        "{component} was not ready after {timeout:?} (last check: {last_error}); last lines of {log}:\n{log_tail}"
    )]
    NotReady {
        /// Which server was not ready.
        component: String,
        /// How long the kit waited.
        timeout: Duration,
        /// The last readiness probe's failure.
        last_error: String,
        /// Where its full log is.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },

    /// A helper command (openssl, initdb, pg_ctl, chown, ...) failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line, for the reader.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines of its combined output.
        output: String,
    },

    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the kit was doing.
        context: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A Kubernetes API request failed.
    #[error("Kubernetes API request failed while {context}: {source}")]
    Kube {
        /// What the kit was doing.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },

    /// The generated kubeconfig could not be turned into a client configuration.
    #[error("invalid kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The parse or load error.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The directory with the CRD manifests does not exist.
    #[error(
        "CRD directory {path} not found; check out the shared data next to the repository or set PREVIEW_CRD_DIR"
    )]
    CrdDirMissing {
        /// The directory the kit looked for.
        path: PathBuf,
    },

    /// A YAML or JSON document could not be parsed.
    #[error("could not parse {what}: {message}")]
    Parse {
        /// What was being parsed (file name, document index).
        what: String,
        /// The parser's message.
        message: String,
    },

    /// A PostgreSQL operation failed.
    #[error("PostgreSQL request failed while {context}: {source}")]
    Postgres {
        /// What the kit was doing.
        context: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// Something the kit waited for did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What the kit was waiting for.
        what: String,
        /// How long it waited.
        timeout: Duration,
    },

    /// The node simulator could not start or stopped unexpectedly.
    #[error("node simulator: {0}")]
    Simulator(String),

    /// The cert-manager controller cannot be started on this cluster.
    #[error("cert-manager: {0}")]
    CertManager(String),
}

impl KitError {
    /// Wraps an I/O error with what the kit was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        KitError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a Kubernetes client error with what the kit was doing.
    pub(crate) fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        KitError::Kube {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_say_what_to_do() {
        let errors = [
            KitError::MissingBinary {
                binary: "etcd".into(),
                searched: "PATH".into(),
            },
            KitError::PortInUse {
                component: "etcd".into(),
                port: 2379,
            },
            KitError::CrdDirMissing {
                path: PathBuf::from("/x"),
            },
            KitError::Timeout {
                what: "CRD x".into(),
                timeout: Duration::from_secs(60),
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
        }
        let port = KitError::PortInUse {
            component: "kube-apiserver".into(),
            port: 6443,
        }
        .to_string();
        assert!(port.contains("127.0.0.1:6443"), "{port}");
        assert!(port.contains("address already in use"), "{port}");
    }
}
