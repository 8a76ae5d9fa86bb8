//! The measuring side of e3pipe, and the only crate that links libtorch: GPT-2, T5 and BERT implemented on tch
//! (`models`), the timing loop (`bench`), and the `e3pipe-worker` process that the `e3pipe` orchestrator hands
//! each bench step's uncached points to (`run`).

pub mod bench;
pub mod models;
pub mod run;
