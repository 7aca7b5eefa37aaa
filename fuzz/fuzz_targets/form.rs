//! The token form parser: any body must parse or be refused with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moneykit_auth::http::extract::parse_form;
use moneykit_wire::TokenForm;

fuzz_target!(|body: &[u8]| {
    if let Ok(form) = parse_form(body, TokenForm::FIELDS) {
        // Every field that parsed is one of the known names, and reading it back works.
        for name in TokenForm::FIELDS {
            let _ = form.get(name);
        }
        // `resource` may repeat, up to its cap.
        assert!(form.resources().count() <= moneykit_auth::http::extract::MAX_RESOURCES);
    }
});
