//! A `state.json` given its correct checksum before the read, so every document that
//! decodes reaches the schema checks and the write-back.
#![no_main]

use checklist_backends::JsonCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checklist_fuzz::check_resealed_state_file(&JsonCodec, data));
