//! Where configuration comes from. A source reads (files, the apiserver) and hands change sets to the
//! [`crate::pipeline`]; it never translates or publishes itself.

pub mod directory;
pub mod kubernetes;
