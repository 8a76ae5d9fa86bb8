//! The pipeline stages: spec (YAML) -> dag (order of names) -> graph (steps in order, drawings) -> plan (what to
//! compute) -> execute. What a step of each kind does at every stage is defined once, in `kind` and `kinds/`.

pub mod dag;
pub mod execute;
pub mod executor;
pub mod executor_config;
pub mod graph;
pub mod kind;
pub mod kinds;
pub mod plan;
pub mod probe;
pub mod slurm;
pub mod slurm_identity;
pub mod spec;
pub mod worker_process;
