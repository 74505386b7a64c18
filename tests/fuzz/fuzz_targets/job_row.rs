//! The validation of a job row's `server` and `port` (and the fitting of a result into its
//! column) on any input: it never panics, an accepted server holds nothing a resolver or a
//! shell would read in another way, and a fitted result fits.
#![no_main]

use dbjobs::queue::fit_result;
use dbjobs::validate::{endpoint, host};
use dbjobs_sdk::Direction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (port_bytes, server) = rest.split_at(rest.len().min(8));
    let mut port = [0u8; 8];
    port[..port_bytes.len()].copy_from_slice(port_bytes);
    let port = i64::from_le_bytes(port);
    let server = String::from_utf8_lossy(server);
    let direction = match first % 3 {
        0 => Direction::Inbound,
        1 => Direction::Outbound,
        _ => Direction::Local,
    };
    let port = (first & 0x80 != 0).then_some(port);
    if let Ok(e) = endpoint(direction, Some(&server), port) {
        if let Some(s) = &e.server {
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)),
                "{s:?}"
            );
            assert_eq!(host(s).as_deref(), Ok(s.as_str()), "validation is stable");
        }
    }
    let max = usize::from(first);
    for unicode in [true, false] {
        let fitted = fit_result(&server, max, unicode);
        assert!(fitted.chars().count() <= max, "{max}: {fitted:?}");
        assert!(unicode || fitted.is_ascii());
    }
});
