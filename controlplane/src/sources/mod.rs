//! Where configuration comes from. Each source turns what it reads into a translation builder for the cache.

pub mod directory;
pub mod kubernetes;
