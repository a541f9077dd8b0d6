//! The binary protocol: frame codec (sans-IO), messages, the tokio server and client.

pub mod client;
pub mod frame;
pub mod messages;
pub mod server;

pub use client::{Client, ClientError, WatchStream};
pub use messages::{
    CancelOutcomeWire, CancelResult, Hello, RemoteError, RemoteErrorKind, Request, RequestView,
    Response, SpecList, StreamItem, SubmitRequest, SubmitView, WatchRequest, Welcome,
};
pub use server::{Server, ServerConfig};
