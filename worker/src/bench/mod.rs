//! Measuring one point: exact-length inputs, the timing loop, and the GPU allocator's peak.

pub mod cuda_memory;
pub mod energy;
pub mod input;
pub mod peaks;
pub mod runner;
