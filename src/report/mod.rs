//! From results to tables (aggregate), scaling fits (fit) and figures (plot).

pub mod aggregate;
pub mod columns;
pub mod fit;
pub mod freshness;
pub mod history;
pub mod html;
pub mod pareto;
pub mod plot;
pub mod point_warnings;
pub mod regimes;
pub mod student_t;
