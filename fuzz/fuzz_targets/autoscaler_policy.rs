//! The autoscaler's policy decoder: the body of `PUT /api/autoscaler/policies/{name}` (YAML
//! or JSON, checked as a policy file is: `drover_autoscaler::policy::load_one`), and the same
//! text as a policy file (`load_sources`, what `drover up --policies DIR` reads).
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = drover_autoscaler::policy::load_one("fuzz", text);
    let _ = drover_autoscaler::policy::load_sources(&[(PathBuf::from("p.yaml"), text.to_string())]);
});
