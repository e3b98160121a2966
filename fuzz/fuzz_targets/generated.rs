//! Generated configuration (tests/generate, every flavor) through the reader and the translator.
#![no_main]

mod common;

use arbitrary::Unstructured;
use generate::Flavor;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let flavor = match u.int_in_range(0..=2u8) {
        Ok(0) => Flavor::Valid,
        Ok(1) => Flavor::Nearly,
        _ => Flavor::Wrong,
    };
    if let Ok(world) = generate::world(&mut u, flavor) {
        common::translate_all(&world.yaml);
    }
});
