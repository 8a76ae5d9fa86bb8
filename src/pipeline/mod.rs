//! The pipeline stages: spec (YAML) -> graph (DAG) -> plan (what to compute) -> execute.

pub mod execute;
pub mod graph;
pub mod job;
pub mod plan;
pub mod results_file;
pub mod spec;
