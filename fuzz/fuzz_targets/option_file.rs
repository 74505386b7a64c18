//! The host's option-file parser on any text: it never panics, and every value it returns can
//! be read back by name.
#![no_main]

use dbjobs::config::OptionFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = OptionFile::parse(&text) {
        for section in ["dbjobs", "client", "client-server", "mysqld"] {
            let pairs: Vec<(String, String)> = file
                .section(section)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (k, v) in pairs {
                assert_eq!(file.get(section, &k), Some(v.as_str()));
            }
        }
    }
});
