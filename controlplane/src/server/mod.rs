//! The ADS server: SotW and Delta streams over one state machine.

pub mod stream;
