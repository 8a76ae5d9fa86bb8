//! Measuring points: exact-length inputs, the timing loop, memory, statistics and the result files.

pub mod anchor;
pub mod config;
pub mod interval;
pub mod memory;
pub mod order;
pub mod peaks;
pub mod result;
pub mod roofline;
pub mod stats;
pub mod stopping;
