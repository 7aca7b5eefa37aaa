//! The webhook URL policy over arbitrary text: refused or accepted, never a panic, and an
//! accepted URL under the strict policy is https without credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moneykit_auth::net::guard::{TargetPolicy, check_url};

fuzz_target!(|text: &str| {
    if let Ok(url) = check_url(text, TargetPolicy::default()) {
        assert_eq!(url.scheme(), "https");
        assert!(url.username().is_empty() && url.password().is_none());
    }
});
