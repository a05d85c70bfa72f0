//! Free loopback ports.
//!
//! The kit asks the kernel for ports by binding `127.0.0.1:0`, notes the port and
//! closes the socket straight away, so the reservation lasts only as long as the
//! call. Another process can still take a port between that moment and the
//! server's own bind; servers then fail with "address already in use", which
//! [`log_says_port_in_use`] recognises so callers can report
//! [`KitError::PortInUse`](crate::KitError::PortInUse) in one line (and
//! [`TestCluster::start`](crate::TestCluster::start) retries with fresh ports).

use std::net::TcpListener;

use crate::KitError;

/// Returns `count` distinct free TCP ports on 127.0.0.1.
///
/// All listeners are held at once while collecting, so the ports differ from
/// each other, then closed before returning.
pub fn free_ports(count: usize) -> Result<Vec<u16>, KitError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)).map_err(KitError::NoFreePort))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(KitError::NoFreePort)
        })
        .collect()
}

/// Returns one free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, KitError> {
    let ports = free_ports(1)?;
    ports
        .first()
        .copied()
        .ok_or_else(|| KitError::NoFreePort(std::io::Error::other("the kernel returned no port")))
}

/// Whether a server's log shows that it lost a race for its port.
pub fn log_says_port_in_use(log: &str) -> bool {
    let lower = log.to_ascii_lowercase();
    lower.contains("address already in use") || lower.contains("could not bind")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_free() {
        let ports = free_ports(5).expect("ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        for port in ports {
            // Free again after the call returned.
            TcpListener::bind(("127.0.0.1", port)).expect("port is free");
        }
    }

    #[test]
    fn recognises_bind_failures() {
        assert!(log_says_port_in_use(
            "Error: listen tcp 127.0.0.1:2379: bind: address already in use"
        ));
        assert!(log_says_port_in_use(
            "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
        ));
        assert!(!log_says_port_in_use("serving on 127.0.0.1:6443"));
    }
}
