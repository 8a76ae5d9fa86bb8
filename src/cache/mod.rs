//! The point cache: keys, the on-disk store, per-point locks and (the `e3pipe cache` command is `cache_command`).

pub mod file_hash;
pub mod key;
pub mod lock;
pub mod settled;
pub mod store;
