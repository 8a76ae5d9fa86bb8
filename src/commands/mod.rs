//! What each subcommand does (`cli` holds their arguments).

pub mod baseline;
pub mod cache;
pub mod compare;
pub mod graph;
pub mod history;
pub mod identify;
pub mod peaks;
pub mod run;
