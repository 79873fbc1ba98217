//! The filter readers: the ws1 `SETFILTER` halves (`priority,class,type,GUID`, also the config
//! file's and users.json's form) and the ws2 `SETFILTER` args object, on untrusted text. A
//! filter that parses is written back (the AUTH1 form) and must read back unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_proto::Filter;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (f, m) = text.split_once(';').unwrap_or((text, ""));
        if let Ok(filter) = Filter::from_strings(f, m) {
            let (mut f2, mut m2) = (String::new(), String::new());
            filter.write_filter_half(&mut f2);
            filter.write_mask_half(&mut m2);
            let again = Filter::from_strings(&f2, &m2).expect("our own form parses");
            assert_eq!(again, filter, "{f2};{m2}");
        }
    }
    let mut buf = data.to_vec();
    if let Ok(args) = simd_json::to_borrowed_value(&mut buf) {
        let _ = Filter::from_ws2_args(&args);
    };
});
