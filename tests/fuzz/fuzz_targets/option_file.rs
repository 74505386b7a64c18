//! The host's option files on any text: parsing never panics and every value it returns can
//! be read back by name; any value dbjobs writes into an option file (`option_line`, the 0600
//! client file of the tools it starts, a password with any byte) reads back exactly, or is
//! refused with a reason.
#![no_main]

use dbjobs::option_file::{display_value, option_line, OptionFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = OptionFile::parse(&text) {
        for section in ["dbjobs", "client", "client-server", "mysqld"] {
            let pairs: Vec<(String, String)> = file
                .section(section)
                .map(|(k, e)| (k.to_string(), e.value.clone()))
                .collect();
            for (k, v) in pairs {
                assert_eq!(file.get(section, &k), Some(v.as_str()));
            }
        }
    }
    // The input as a value (a password with a newline, quotes, backslashes, ...).
    if let Ok(line) = option_line("password", &text) {
        let file = OptionFile::parse(&format!("[client]\nuser=u\n{line}\nsocket=/s\n"))
            .unwrap_or_else(|e| panic!("{line:?} does not parse back: {e}"));
        assert_eq!(file.get("client", "password"), Some(&*text), "{line:?}");
        assert_eq!(file.get("client", "socket"), Some("/s"));
    }
    if let Ok(shown) = display_value(&text) {
        if let Ok(file) = OptionFile::parse(&format!("[dbjobs]\nk = {shown}\n")) {
            assert_eq!(file.get("dbjobs", "k"), Some(&*text), "{shown:?}");
        }
    }
});
