//! `.checklist/config.yaml` as `load_config` parses it; a config that parses must
//! survive `write_config`'s encoding unchanged.
#![no_main]

use std::path::Path;

use checklist_backends::{Codec, YamlCodec, parse_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new(".checklist/config.yaml");
    let Ok(config) = parse_config(data, path) else {
        return;
    };
    // Derived values the store computes from a config must not panic.
    let _ = (
        config.lock.timeout(),
        config.lock.retry_interval(),
        config.lock.expiry(),
    );
    let written = YamlCodec
        .encode(&config.to_value())
        .unwrap_or_else(|e| panic!("a config that parsed does not encode: {e}"));
    let read_back = parse_config(&written, path)
        .unwrap_or_else(|e| panic!("a config that parsed does not parse once written: {e}"));
    assert_eq!(read_back, config, "a config changed in a write-back");
});
