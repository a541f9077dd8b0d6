//! The binary protocol: frame codec (sans-IO), messages, the tokio server and client.

pub mod client;
pub mod frame;
pub mod messages;
pub mod server;

pub use client::{Client, ClientError, WatchStream};
pub use messages::{
    CancelOutcomeWire, CancelResult, Hello, RemoteError, RemoteErrorKind, Request, RequestView,
    Response, ResponseView, SpecList, StreamItem, SubmitRequest, SubmitView, WatchRequest, Welcome,
};
pub use server::{Server, ServerConfig};

/// What to check when binding `address` failed with `error` (the caller's message goes on
/// to name the flag to change); None for errors with nothing to add.
pub fn bind_advice(error: &std::io::Error, address: std::net::SocketAddr) -> Option<String> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::AddrInUse => Some("another process (another node?) uses it".into()),
        ErrorKind::AddrNotAvailable => Some(format!(
            "{} is not an address of this machine (`ip addr` lists them; 0.0.0.0 means all)",
            address.ip()
        )),
        ErrorKind::PermissionDenied if address.port() < 1024 => Some(format!(
            "port {} is below 1024, which needs privileges; use a higher port",
            address.port()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::bind_advice;

    #[test]
    fn a_failed_bind_says_what_to_check() {
        // An address of no interface here (TEST-NET-1), and a port already taken.
        let foreign: std::net::SocketAddr = "192.0.2.1:7421".parse().expect("address");
        let error = std::net::UdpSocket::bind(foreign).expect_err("not this machine's");
        let advice = bind_advice(&error, foreign).unwrap_or_default();
        assert!(
            advice.contains("192.0.2.1 is not an address of this machine"),
            "{error}: {advice}"
        );
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("a port");
        let address = taken.local_addr().expect("bound");
        let error = std::net::UdpSocket::bind(address).expect_err("taken");
        let advice = bind_advice(&error, address).unwrap_or_default();
        assert!(advice.contains("another process"), "{error}: {advice}");
    }
}
