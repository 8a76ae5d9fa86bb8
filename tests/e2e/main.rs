//! End-to-end tests: the real `e3pipe` binary on tiny real-architecture models in a temp project.

// Levels and fixture values are exact binary fractions, compared exactly on purpose.
#![allow(clippy::float_cmp)]
// Test code: a failed step should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod bench;
mod cache;
mod cluster;
mod compare;
mod custom_figures;
mod docs_links;
mod families;
mod history;
mod hostile;
mod html_report;
mod identity;
mod measurement;
mod memory;
mod project;
mod report;
mod roofline;
mod shared_project;
mod slurm;
mod validation;
mod visual_language;
