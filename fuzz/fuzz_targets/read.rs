//! Raw bytes (as UTF-8, lossily) through the document reader and the translator.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::translate_all(&String::from_utf8_lossy(data));
});
