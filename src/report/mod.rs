//! From results to tables (aggregate), scaling fits (fit) and figures (plot).

pub mod aggregate;
pub mod columns;
pub mod fit;
pub mod freshness;
pub mod plot;
pub mod regimes;
pub mod student_t;
