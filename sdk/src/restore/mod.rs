//! Reseed and flashback: receive a stream and restore it (being written).
pub mod logical;
pub mod physical;
pub mod receive;
pub mod xbstream;
