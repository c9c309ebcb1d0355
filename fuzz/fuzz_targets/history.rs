//! `.checklist/history.yaml` read through the store's `history`.
#![no_main]

use std::sync::LazyLock;

use checklist_core::prelude::*;
use checklist_fuzz::StoreDir;
use libfuzzer_sys::fuzz_target;

static STORE: LazyLock<StoreDir> = LazyLock::new(StoreDir::new);

fuzz_target!(|data: &[u8]| {
    let dir = &*STORE;
    dir.plant("history.yaml", data);
    let _ = dir.runtime.block_on(dir.store.history());
});
