//! Checking a row's fields before any plugin sees them.
//!
//! The bash agent pasted `server` and `port` into shell commands. dbjobs never uses a shell,
//! but it still refuses anything that is not a plain host name or IP address and a port in
//! range, so a bad row fails with a clear `result` instead of doing something surprising.

use dbjobs_sdk::Direction;

/// The port an inbound job listens on when the row says 0 or NULL.
pub const DEFAULT_RECEIVE_PORT: u16 = 4444;

/// A row's `server` and `port` after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets); `None` for a local job without one.
    pub server: Option<String>,
    /// Port; an inbound job's 0 is already 4444.
    pub port: u16,
}

/// Validate `server`/`port` for a task of `direction`. The error is the text for `result`.
pub fn endpoint(
    direction: Direction,
    server: Option<&str>,
    port: Option<i64>,
) -> Result<Endpoint, String> {
    let server = server.map(str::trim).filter(|s| !s.is_empty());
    let port_value = port.unwrap_or(0);
    if !(0..=65535).contains(&port_value) {
        return Err(format!(
            "port {} is out of range: it must be in 0..=65535",
            port.map(|p| if p == i64::MIN {
                "(not a number)".to_string()
            } else {
                p.to_string()
            })
            .unwrap_or_default()
        ));
    }
    let mut port = port_value as u16;
    let server = match server {
        Some(s) => Some(host(s)?),
        None => None,
    };
    match direction {
        Direction::Outbound => {
            if server.is_none() {
                return Err("server is NULL or empty: an outbound job needs replication-manager's address to send to".into());
            }
            if port == 0 {
                return Err("port is 0 or NULL: an outbound job needs the port replication-manager listens on".into());
            }
        }
        Direction::Inbound if port == 0 => port = DEFAULT_RECEIVE_PORT,
        // Local, and any direction of a newer SDK (the loader refuses those anyway).
        _ => {}
    }
    Ok(Endpoint { server, port })
}

/// Check that `s` is an IPv4/IPv6 address or a DNS host name; return it without IPv6 brackets.
///
/// IPv4 addresses are accepted as dotted quads only. The system resolver also reads the
/// older numeric forms (`127.1`, `2130706433`, `0x7f.1`, `017700000001` all are 127.0.0.1),
/// which would let a row name an address that no operator reading it recognises; a name
/// whose last label is a number can only be such a form (no top-level domain is numeric), so
/// it is refused unless it is a dotted quad.
pub fn host(s: &str) -> Result<String, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(bare.to_string());
    }
    let shown: String = s.chars().take(80).collect();
    if bare.rsplit('.').next().is_some_and(is_numeric_label) {
        return Err(format!(
            "server {shown:?} looks like a numeric address but is not a dotted-quad IPv4 address (such as 127.0.0.1) nor an IPv6 one"
        ));
    }
    let valid = bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(bare.to_string())
    } else {
        Err(format!("server {shown:?} is not a host name or IP address"))
    }
}

/// Whether a host name label is a number the resolver reads as part of an IPv4 address:
/// decimal (octal with a leading 0) digits, or `0x` and hexadecimal digits.
fn is_numeric_label(label: &str) -> bool {
    let digits = match label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        Some(hex) => return hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label,
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(host("[::1]").unwrap(), "::1");
        assert_eq!(
            host("db-1.example_net.local").unwrap(),
            "db-1.example_net.local"
        );
        for bad in ["a;rm -rf /", "$(id)", "a b", "x..y", "-x", "a'b", "`id`"] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert!(host(&"a".repeat(300)).is_err());
    }

    #[test]
    fn numeric_forms_other_than_dotted_quads_are_refused() {
        // Each is 127.0.0.1 to the resolver.
        for bad in [
            "0x7f.1",
            "2130706433",
            "127.1",
            "017700000001",
            "0x7f000001",
            "0x",
            "127.0.1",
            "010.0.0.1",
            "[127.1]",
        ] {
            let e = host(bad).unwrap_err();
            assert!(e.contains("dotted-quad"), "{bad}: {e}");
        }
        for good in [
            "127.0.0.1",
            "1e100.net",
            "0x7f.example",
            "db1",
            "10.0.0.1",
            "::1",
        ] {
            assert!(host(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn ports_per_direction() {
        assert_eq!(
            endpoint(Direction::Inbound, Some("h"), None).unwrap().port,
            4444
        );
        assert_eq!(
            endpoint(Direction::Inbound, Some("h"), Some(0))
                .unwrap()
                .port,
            4444
        );
        assert_eq!(
            endpoint(Direction::Outbound, Some("h"), Some(10000))
                .unwrap()
                .port,
            10000
        );
        assert!(endpoint(Direction::Outbound, Some("h"), Some(0)).is_err());
        assert!(endpoint(Direction::Outbound, None, Some(10)).is_err());
        assert!(endpoint(Direction::Local, None, Some(70000))
            .unwrap_err()
            .contains("out of range"));
        assert!(endpoint(Direction::Local, None, Some(-1)).is_err());
        assert_eq!(
            endpoint(Direction::Local, None, None).unwrap(),
            Endpoint {
                server: None,
                port: 0
            }
        );
    }
}
