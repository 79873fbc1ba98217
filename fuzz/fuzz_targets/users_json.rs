//! The users.json reader (users, rights, remotes, allow-lists, filters, password hashes) on
//! untrusted text; for every user it accepts, the checks a login makes run too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_proto::UserDb;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(db) = UserDb::from_json(text) else {
        return;
    };
    let _ = db.unknown_keys();
    for user in db.iter() {
        // PBKDF2 hashes cost 70,000 rounds per check: only the cheap ones are verified.
        if !user.password_is_slow() {
            let _ = user.verify_password("secret");
        }
        let _ = user.allows_remote("127.0.0.1".parse().expect("an address"));
        let _ = user.allows_remote("::1".parse().expect("an address"));
        let _ = user.check_send(20, 3);
        let _ = user.can_receive_event(10, 6);
        let _ = user.cap_priority(0xE0);
        let mut s = String::new();
        user.write_auth1_fields(&mut s);
        assert!(db.get(&user.name).is_some());
    }
});
