//! The step kinds e3pipe ships, one module each (see `pipeline::kind` for what a kind defines).

pub mod aggregate;
pub mod bench;
pub mod plot;

use crate::pipeline::kind::Registry;

/// Every built-in kind, in the order messages list them.
pub fn builtin() -> Registry {
    Registry::new(vec![&bench::Bench, &aggregate::Aggregate, &plot::Plot])
}
