//! Fuzzes the path normalizer (pipeline stage 1) with arbitrary bytes. It must never panic,
//! and whatever it accepts must be canonical: a fixed point of itself, absolute, without
//! `//`, dot segments, backslashes, control characters or encoded separators.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wardgate::config::PathRules;
use wardgate::pipeline::{canonical_path, check_canonical};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    for rules in [PathRules { allow_semicolon: false }, PathRules { allow_semicolon: true }] {
        if let Ok(canonical) = canonical_path(raw, &rules) {
            if let Err(broken) = check_canonical(&canonical, &rules) {
                panic!("{raw:?} -> {canonical:?} {broken}");
            }
        }
    }
});
