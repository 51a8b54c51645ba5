//! HTTP/2 (and gRPC over it) from the frame records the kernel captures.
//!
//! The kernel walks every HTTP/2 buffer frame by frame and reports each frame
//! header plus the complete payload of header-carrying frames (see
//! [`records`]), so header blocks are decoded in order and the per-direction
//! HPACK tables stay in step with the peers' ([`conn::H2Conn`]).

pub mod conn;
pub mod frame;
pub mod records;

#[cfg(test)]
mod tests;

pub use conn::{Desync, H2Conn, H2Exchange, RequestHead, Side};
