//! `.checklist/.backup/manifest.yaml` read through the store: `list_backups`, then
//! `read_backup` of every listed id (which must check the listed file name before it
//! names a file).
#![no_main]

use std::sync::LazyLock;

use checklist_core::prelude::*;
use checklist_fuzz::StoreDir;
use libfuzzer_sys::fuzz_target;

static STORE: LazyLock<StoreDir> = LazyLock::new(StoreDir::new);

fuzz_target!(|data: &[u8]| {
    let dir = &*STORE;
    dir.plant(".backup/manifest.yaml", data);
    let Ok(backups) = dir.runtime.block_on(dir.store.list_backups()) else {
        return;
    };
    for backup in backups.iter().take(8) {
        let _ = dir.runtime.block_on(dir.store.read_verified_backup(&backup.id));
    }
});
