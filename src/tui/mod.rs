//! The terminal console. It reads a node only through [`crate::runtime::NodeSnapshot`] and the
//! event stream, the same types a remote console receives over the wire.
