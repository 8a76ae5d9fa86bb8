//! The point cache: keys, the on-disk store, per-point locks and the settled index (the `e3pipe cache` command is
//! `cache_command`).

pub mod key;
pub mod lock;
pub mod peaks;
pub mod settled;
pub mod store;
