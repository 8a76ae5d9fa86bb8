//! The results schema (`document`) and the conversions that read older layouts into it (`legacy`).

pub mod document;
pub mod legacy;
