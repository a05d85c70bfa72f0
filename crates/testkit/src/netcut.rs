//! A network path a test can cut and restore: a network namespace of its own
//! whose only way out is a TCP forwarder the test owns, on loopback addresses
//! only.
//!
//! [`CuttablePath::new`] makes a new network namespace (`ip netns add`; only
//! its own `lo`, brought up) and, for each given port of a server listening on
//! the host's `127.0.0.1`, a listener on the same `127.0.0.1:PORT` *inside* the
//! namespace (bound by a thread that entered it with `setns`). A forwarder
//! thread outside copies every accepted connection to the host's server
//! (`tokio::io::copy_bidirectional`). A process started in the namespace
//! ([`CuttablePath::exec_prefix`]: `ip netns exec NAME …`) therefore reaches
//! those servers at the addresses it would use outside (the kubeconfig and TLS
//! names stay the same) and nothing else.
//!
//! [`CuttablePath::cut`] replaces the namespace's `lo` queueing discipline
//! with the kernel's `blackhole` qdisc (`tc qdisc add dev lo root blackhole`):
//! every packet sent inside the namespace is dropped, in both directions. That
//! is a real partition, not a refusal: established connections get no answer
//! (their segments are lost and TCP retransmits them with backoff), a new
//! `connect` sees no SYN-ACK and waits, nothing gets a reset or an ICMP error.
//! [`CuttablePath::restore`] deletes the qdisc; retransmitted segments then get
//! through and the held connections carry on where they stopped.
//!
//! Nothing on the host changes: no interface, address, route or firewall rule
//! outside the namespace. The namespace is deleted on drop, and by the kit's
//! watchdog if the test process dies first. Needs root (or `CAP_SYS_ADMIN` and
//! `CAP_NET_ADMIN`), `ip` and `tc` from iproute2.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::KitError;
use crate::scratch::Scratch;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace reaching the host's loopback servers only through a
/// forwarder, with a switch that drops every packet inside it.
#[derive(Debug)]
pub struct CuttablePath {
    name: String,
    forwarder: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    cuts: u32,
    is_cut: bool,
    /// Last: its watchdog deletes the namespace if the test process dies.
    _watchdog: Scratch,
}

impl CuttablePath {
    /// A new namespace in which `127.0.0.1:PORT`, for each of `ports`, leads
    /// to the host's `127.0.0.1:PORT`.
    pub fn new(ports: &[u16]) -> Result<CuttablePath, KitError> {
        let name = format!(
            "testkit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut scratch = Scratch::new("testkit-netcut-", None)?;
        ip(&["netns", "add", &name])?;
        scratch.watch_netns(&name)?;
        let mut path = CuttablePath {
            name,
            forwarder: None,
            cuts: 0,
            is_cut: false,
            _watchdog: scratch,
        };
        ip(&["netns", "exec", &path.name, "ip", "link", "set", "lo", "up"])?;
        let listeners = in_namespace(&path.name, {
            let ports = ports.to_vec();
            move || {
                ports
                    .iter()
                    .map(|p| {
                        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, *p))?;
                        listener.set_nonblocking(true)?;
                        Ok((listener, *p))
                    })
                    .collect::<std::io::Result<Vec<_>>>()
            }
        })?;
        path.forwarder = Some(spawn_forwarder(listeners)?);
        tracing::info!(netns = %path.name, ?ports, "cuttable path ready");
        Ok(path)
    }

    /// The namespace's name (`ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The words that run a command inside the namespace: `ip netns exec NAME`.
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Drops every packet inside the namespace from now on (see the module docs).
    pub fn cut(&mut self) -> Result<(), KitError> {
        if self.is_cut {
            return Ok(());
        }
        self.tc(&["qdisc", "add", "dev", "lo", "root", "blackhole"])?;
        self.is_cut = true;
        self.cuts += 1;
        tracing::info!(netns = %self.name, "network path cut");
        Ok(())
    }

    /// Delivers packets again; held connections resume as TCP retransmits.
    pub fn restore(&mut self) -> Result<(), KitError> {
        if !self.is_cut {
            return Ok(());
        }
        self.tc(&["qdisc", "del", "dev", "lo", "root"])?;
        self.is_cut = false;
        tracing::info!(netns = %self.name, "network path restored");
        Ok(())
    }

    /// How many times [`CuttablePath::cut`] cut the path.
    pub fn cuts(&self) -> u32 {
        self.cuts
    }

    /// Runs `f` on a thread inside the namespace (sockets it makes belong to
    /// the namespace), e.g. a test's own client.
    pub fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, KitError> {
        in_namespace(&self.name, f)
    }

    fn tc(&self, args: &[&str]) -> Result<(), KitError> {
        let mut all = vec!["netns", "exec", &self.name, "tc"];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for CuttablePath {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.forwarder.take() {
            let _ = stop.send(true);
            let _ = thread.join();
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete the namespace");
        }
    }
}

/// `ip args…`; a non-zero exit is an error quoting its output.
fn ip(args: &[&str]) -> Result<(), KitError> {
    let shown = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| KitError::Spawn {
            program: shown.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(KitError::Command {
        command: shown,
        status: output.status.to_string(),
        output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Runs `f` on a new thread moved into namespace `name` (only that thread
/// moves; the thread ends with `f`).
fn in_namespace<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, KitError> {
    let path = format!("/run/netns/{name}");
    let context = format!("entering network namespace {name}");
    let thread = std::thread::spawn(move || {
        let ns = File::open(&path)?;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        f()
    });
    match thread.join() {
        Ok(result) => result.map_err(|e| KitError::io(context, e)),
        Err(_) => Err(KitError::io(
            context,
            std::io::Error::other("the thread panicked"),
        )),
    }
}

/// A thread with its own runtime (outside the namespace) forwarding each
/// listener's connections to the host's `127.0.0.1` on the same port.
fn spawn_forwarder(
    listeners: Vec<(TcpListener, u16)>,
) -> Result<(watch::Sender<bool>, JoinHandle<()>), KitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KitError::io("starting the forwarder's runtime", e))?;
    let (stop, mut stopped) = watch::channel(false);
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (listener, port) in listeners {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        tasks.spawn(accept_loop(listener, port));
                    }
                    Err(e) => tracing::error!(port, error = %e, "forwarder listener"),
                }
            }
            let _ = stopped.wait_for(|s| *s).await;
            tasks.abort_all();
        });
    });
    Ok((stop, thread))
}

async fn accept_loop(listener: tokio::net::TcpListener, port: u16) {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (inside, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(port, error = %e, "forwarder accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        connections.spawn(async move {
            let mut inside = inside;
            let _ = inside.set_nodelay(true);
            match tokio::net::TcpStream::connect(target).await {
                Ok(mut outside) => {
                    let _ = outside.set_nodelay(true);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut inside, &mut outside).await {
                        tracing::debug!(port, error = %e, "forwarded connection ended");
                    }
                }
                Err(e) => tracing::debug!(port, error = %e, "forwarder could not connect"),
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::*;

    /// An echo server on the host's loopback.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    fn echo(stream: &mut TcpStream, text: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
        stream.set_read_timeout(Some(wait))?;
        stream.write_all(text)?;
        let mut buf = vec![0u8; text.len()];
        stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    #[test]
    fn a_cut_drops_packets_and_a_restore_resumes_held_connections() {
        let port = echo_server();
        let mut path = CuttablePath::new(&[port]).expect("path");
        // Inside the namespace the host's port answers through the forwarder.
        let mut held = path
            .run_inside(move || {
                TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    Duration::from_secs(5),
                )
            })
            .expect("connect inside");
        assert_eq!(
            echo(&mut held, b"before", Duration::from_secs(5)).expect("echo"),
            b"before"
        );

        path.cut().expect("cut");
        // A held connection gets no answer (no reset, no error: silence)…
        let err = echo(&mut held, b"during", Duration::from_secs(1)).expect_err("no answer");
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
        // …and a new connection is not refused: its SYN is dropped, it waits.
        let began = Instant::now();
        let err = path
            .run_inside(move || {
                TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    Duration::from_secs(2),
                )
            })
            .expect_err("no connection while cut");
        assert!(began.elapsed() >= Duration::from_millis(1900), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");

        path.restore().expect("restore");
        // The segment sent during the cut is retransmitted and answered.
        held.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut buf = [0u8; 6];
        held.read_exact(&mut buf)
            .expect("the held connection resumes");
        assert_eq!(&buf, b"during");
        assert_eq!(path.cuts(), 1);

        let name = path.name().to_owned();
        drop(path);
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        assert!(
            !String::from_utf8_lossy(&list.stdout).contains(&name),
            "namespace {name} deleted"
        );
    }
}
