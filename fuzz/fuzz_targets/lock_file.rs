//! `.checklist/.lock` as the lock provider reads it to inspect or judge a holder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(holder) = checklist_backends::parse_lock_file(data) {
        // The staleness rule measures a holder's declared expiry this way.
        let _expiry = (holder.expires_at - holder.renewed_at).to_std();
    }
});
