#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::check(tarn_lake::strip::strip_gif, data));
