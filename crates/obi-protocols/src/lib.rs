//! Pure, allocation-light parsers for the application protocols obi-rs traces.
//!
//! Nothing in this crate does I/O: callers hand in the bytes the kernel captured
//! (possibly with holes) and get protocol events back.

pub mod http1;
pub mod http2;
pub mod memcached;
pub mod mqtt;
pub mod mysql;
pub mod postgres;
pub mod resp;
pub mod sql;
