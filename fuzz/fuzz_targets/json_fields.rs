//! Fuzzes the JSON field transformer (pipeline stages 6 and 8) with arbitrary bytes as a
//! request body. It must never panic; a body it accepts must leave no protected value in
//! plain (every selected value comes out as a `wg1:` ciphertext), and revealing what it
//! produced must give back a document equal to the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wardgate::crypto::field_cipher::{DataKey, PREFIX};
use wardgate::crypto::fields::FieldRules;
use wardgate::crypto::json_path::JsonPath;
use wardgate::crypto::redact::Reveal;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    let paths = |list: &[&str]| -> Vec<JsonPath> {
        list.iter().map(|p| JsonPath::parse(p).unwrap()).collect()
    };
    let (phone, id) = (paths(&["$..phone"]), paths(&["$.id", "$.items[*].id", "$[0]"]));
    let rules = FieldRules::new([("phone", phone.as_slice()), ("id", id.as_slice())]);
    let key = DataKey::new(1, Zeroizing::new([9u8; 32]));
    let Ok(Some(sealed)) = rules.protect(body, &key, "pt_fuzz") else { return };
    let shown = rules
        .reveal(&sealed, Ok(&key), "pt_fuzz", &mut |_| Reveal::Plain, &|_, _| String::new())
        .expect("the transformer's own output parses");
    assert!(shown.failures.is_empty(), "its own ciphertexts open");
    // Every selected value was replaced: revealing them all with `remove` leaves no
    // ciphertext of ours and nothing that was selected.
    let removed = rules
        .reveal(&sealed, Ok(&key), "pt_fuzz", &mut |_| Reveal::Remove, &|_, _| String::new())
        .expect("parses");
    if let Some(text) = removed.body {
        assert!(!text.contains(PREFIX) || body.contains(PREFIX));
    }
    // serde_json's typed parsing refuses numbers beyond f64 (`1e999`) that JSON allows and
    // the transformer keeps as text; compare where it can.
    if let Ok(original) = serde_json::from_str::<serde_json::Value>(body) {
        let back: serde_json::Value =
            serde_json::from_str(shown.body.as_deref().unwrap_or(&sealed)).expect("JSON");
        assert_eq!(original, back);
    }
});
