//! Fuzz the xenstore path rules: checking, resolving and the helpers never
//! panic, and what `resolve` accepts is a valid absolute or special path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::DomId;
use xenstore::path;

fuzz_target!(|data: &[u8]| {
    let Some((&d, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let dom = DomId(u16::from(d));
    let _ = path::check_syntax(s);
    let _ = path::counted_len(s);
    if let Ok(abs) = path::resolve(s, dom, path::REL_PATH_MAX) {
        assert!(path::check_syntax(&abs).is_ok());
        assert!(abs.len() <= path::ABS_PATH_MAX);
        assert!(path::is_absolute(&abs) || path::is_special(&abs));
        if path::is_absolute(&abs) {
            assert!(path::is_prefix_of("/", &abs));
            if let Some(parent) = path::parent(&abs) {
                assert!(path::is_prefix_of(parent, &abs));
                assert_eq!(path::join(parent, path::basename(&abs)), abs);
            }
        }
        let _ = path::relative_to(&abs, dom);
    }
    let _ = path::parent(s);
    let _ = path::basename(s);
    let _ = path::is_prefix_of(s, s);
});
