//! A `state.json` read: decode → schema version → schema → checksum, then write-back.
#![no_main]

use checklist_backends::JsonCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checklist_fuzz::check_state_file(&JsonCodec, data));
