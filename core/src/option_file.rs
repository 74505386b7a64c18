//! The MySQL option-file format, read and written the way MariaDB's tools read it.
//!
//! dbjobs reads the operator's option file (`[client]` credentials, `[dbjobs]` settings) and
//! writes one for the tools it starts (`mariadb-backup`, `mariadb`, `mariadb-dump`). Both
//! sides must give every value the meaning MariaDB 10.11's parser (`mysys/my_default.c`,
//! checked against `my_print_defaults`) gives it, or dbjobs and the tools would connect with
//! different passwords. What that parser does, line by line:
//!
//! * it reads at most [`MAX_LINE_BYTES`] bytes of a line (`fgets` into a 4 KiB buffer); the
//!   rest of a longer line becomes a line of its own, so such a line is an error here;
//! * leading spaces are skipped; `#` or `;` first makes a comment, `!` a directive, `[` a
//!   group (case-insensitive name, trailing spaces trimmed, anything after `]` ignored);
//! * a `#` outside quotes ends the line (no space needed before it);
//! * the key ends at the first `=`; key and value are trimmed of spaces, where a space is
//!   any of `\t \n \v \f \r`, ` ` and the byte `0xA0` (latin1's no-break space, which is also
//!   the last byte of UTF-8 characters such as `à`);
//! * a value whose first and last characters are the same quote (`"` or `'`) loses them;
//! * in any value, `\n \t \r \b \s \" \' \\` are escapes; a backslash before anything else,
//!   or at the end, stays as it is. There is no escape for NUL: C strings end there.
//!
//! So the writer puts every value in double quotes with `\\`, `\"`, `\n`, `\r`, `\t` and
//! `\b` escaped, and refuses what no option file can carry: a NUL, or a line longer than the
//! parser reads. The reader refuses the constructs whose MariaDB meaning is surely not what
//! the operator meant (an unclosed quote, a quoted value with text after the closing quote,
//! an unquoted value whose last byte MariaDB would drop as a space, `!include`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The longest line (without its newline) MariaDB's option-file parser reads whole.
pub const MAX_LINE_BYTES: usize = 4094;

/// One `key=value` of a section, with the line it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value after quotes and escapes were resolved; `""` for a key without `=`.
    pub value: String,
    /// Line number in the file, from 1.
    pub line: usize,
}

/// A parsed option file: group name (lowercase) -> (key -> entry). Keys are normalised to
/// use `_` ([`normalize_key`]); a later line of the same key wins, as it does for MariaDB.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OptionFile {
    path: Option<PathBuf>,
    sections: BTreeMap<String, BTreeMap<String, Entry>>,
}

/// `innodb-buffer-pool` and `innodb_buffer_pool` are the same key (MariaDB's option names
/// treat `-` and `_` alike, and are case-sensitive).
pub fn normalize_key(key: &str) -> String {
    key.trim().replace('-', "_")
}

impl OptionFile {
    /// Read and parse `path`. A world-writable file is refused: MariaDB's tools ignore it
    /// (anyone could have put a password or a socket there), so dbjobs would not agree with
    /// them about what it says.
    pub fn read(path: &Path) -> Result<Self> {
        let cannot = |e: std::io::Error| {
            Error::new(format!("cannot read option file {}: {e}", path.display()))
                .help("check the path given to --defaults-file and that this user may read it")
        };
        let meta = std::fs::metadata(path).map_err(cannot)?;
        if meta.is_file() && meta.permissions().mode() & 0o002 != 0 {
            return Err(Error::new(format!(
                "option file {} is writable by every user; MariaDB's tools ignore such a file",
                path.display()
            ))
            .help(format!(
                "chmod o-w {} (0600 when it holds a password)",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(cannot)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::new(format!(
                "option file {} is not UTF-8 text (byte {} of the file)",
                path.display(),
                e.utf8_error().valid_up_to() + 1
            ))
            .help("write the file in UTF-8; dbjobs passes values on as UTF-8")
        })?;
        let mut file = Self::parse(&text).map_err(|e| Error {
            message: format!("{}: {}", path.display(), e.message),
            help: e.help,
        })?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// Parse option-file text as MariaDB does (see the module docs).
    pub fn parse(text: &str) -> Result<Self> {
        let mut file = OptionFile::default();
        let mut section: Option<String> = None;
        for (n, raw) in text.split('\n').enumerate() {
            let at = |e: Error| Error {
                message: format!("line {}: {}", n + 1, e.message),
                help: e.help,
            };
            match parse_line(raw.as_bytes()).map_err(at)? {
                Line::Nothing => {}
                Line::Group(name) => {
                    file.sections.entry(name.clone()).or_default();
                    section = Some(name);
                }
                Line::Option { key, value } => {
                    let Some(section) = &section else {
                        return Err(at(Error::new(format!(
                            "{key:?} comes before any [section]"
                        ))));
                    };
                    let entry = Entry { value, line: n + 1 };
                    file.sections
                        .entry(section.clone())
                        .or_default()
                        .insert(normalize_key(&key), entry);
                }
            }
        }
        Ok(file)
    }

    /// The file this was read from (`None` when parsed from text).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The value of `key` in `section`, if set.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entry(section, key).map(|e| e.value.as_str())
    }

    /// The entry of `key` in `section`, with its line.
    pub fn entry(&self, section: &str, key: &str) -> Option<&Entry> {
        self.sections
            .get(&section.to_ascii_lowercase())
            .and_then(|s| s.get(&normalize_key(key)))
    }

    /// Every key and entry of `section`, by key.
    pub fn section(&self, section: &str) -> impl Iterator<Item = (&str, &Entry)> {
        self.sections
            .get(&section.to_ascii_lowercase())
            .into_iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

/// What one line of an option file is.
enum Line {
    /// Empty or a comment.
    Nothing,
    /// `[name]`, lowercased.
    Group(String),
    /// `key=value` or a bare `key` (value `""`).
    Option { key: String, value: String },
}

/// MariaDB's idea of a space in an option file: latin1's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0xa0)
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    s
}

/// One line, as `search_default_file_with_ext` reads it.
fn parse_line(raw: &[u8]) -> Result<Line> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(Error::new(format!(
            "the line is {} bytes; MariaDB's tools read at most {MAX_LINE_BYTES} bytes of a line and would split it",
            raw.len()
        ))
        .help("shorten the value"));
    }
    if raw.contains(&0) {
        return Err(Error::new(
            "the line holds a NUL byte, where MariaDB's tools end it",
        ));
    }
    let line = trim_start(raw);
    match line.first() {
        None | Some(b'#' | b';') => return Ok(Line::Nothing),
        Some(b'!') => {
            return Err(Error::new(format!(
                "{:?} is not supported by dbjobs",
                text(trim_end(line))?
            ))
            .help("put the settings dbjobs needs directly into the file given to --defaults-file"))
        }
        Some(b'[') => {
            let rest = &line[1..];
            let end = rest.iter().position(|&b| b == b']').ok_or_else(|| {
                Error::new(format!(
                    "unterminated group header {:?}",
                    String::from_utf8_lossy(trim_end(line))
                ))
            })?;
            return Ok(Line::Group(
                text(trim_end(&rest[..end]))?.to_ascii_lowercase(),
            ));
        }
        Some(_) => {}
    }
    let line = &line[..end_of_content(line)];
    let Some(eq) = line.iter().position(|&b| b == b'=') else {
        return Ok(Line::Option {
            key: text(trim_end(line))?,
            value: String::new(),
        });
    };
    let key = text(trim_end(&line[..eq]))?;
    let value = parse_value(&line[eq + 1..], &key)?;
    Ok(Line::Option { key, value })
}

/// Where a `#` outside quotes cuts the line (`remove_end_comment`): a quote opens with `"`
/// or `'` and closes with the same one; inside, a backslash protects the next character.
fn end_of_content(line: &[u8]) -> usize {
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate() {
        if (b == b'"' || b == b'\'') && !escaped {
            match quote {
                None => quote = Some(b),
                Some(q) if q == b => quote = None,
                Some(_) => {}
            }
        }
        if quote.is_none() && b == b'#' {
            return i;
        }
        escaped = quote.is_some() && b == b'\\' && !escaped;
    }
    line.len()
}

/// The value after `=`: trimmed, unquoted, unescaped (see the module docs).
fn parse_value(raw: &[u8], key: &str) -> Result<String> {
    let quote_hint = || {
        format!("write the value of {key} in double quotes, escaping \\ and \" with a backslash")
    };
    let mut v = trim_end(trim_start(raw));
    if let Some(&q @ (b'"' | b'\'')) = v.first() {
        if v.len() < 2 || v.last() != Some(&q) {
            return Err(Error::new(format!(
                "the value of {key} opens a quote it does not close at the end of the line; MariaDB's tools would take the quote as part of the value"
            ))
            .help(quote_hint()));
        }
        v = &v[1..v.len() - 1];
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            i += 1;
            match v[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(0x08),
                b's' => out.push(b' '),
                c @ (b'"' | b'\'' | b'\\') => out.push(c),
                other => out.extend_from_slice(&[b'\\', other]),
            }
        } else {
            out.push(v[i]);
        }
        i += 1;
    }
    // The text was UTF-8 and escapes are ASCII: only a trimmed 0xA0 can have cut a character.
    String::from_utf8(out).map_err(|_| {
        Error::new(format!(
            "the value of {key} ends in a character whose last byte (0xA0, as in à or a no-break space) MariaDB's tools take for a space and drop"
        ))
        .help(quote_hint())
    })
}

/// Key or group text as UTF-8 (the file as a whole is UTF-8; a trim may have cut into it).
fn text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        Error::new(format!(
            "{:?} ends in a character MariaDB's tools would cut (its last byte 0xA0 counts as a space)",
            String::from_utf8_lossy(bytes)
        ))
    })
}

/// `value` in double quotes, escaped so that MariaDB's tools (and [`OptionFile::parse`]) read
/// exactly `value` back. A NUL cannot be written (the tools end the value there).
pub fn quote(value: &str) -> std::result::Result<String, String> {
    if value.contains('\0') {
        return Err("it contains a NUL byte, which no option file can carry (MariaDB's tools end the value there)".into());
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The line `key="value"` for an option file, or why it cannot be written: a NUL in the
/// value, or a line longer than MariaDB's tools read ([`MAX_LINE_BYTES`]).
pub fn option_line(key: &str, value: &str) -> std::result::Result<String, String> {
    let line = format!("{key}={}", quote(value)?);
    if line.len() > MAX_LINE_BYTES {
        return Err(format!(
            "written as {key}=\"...\" it takes {} bytes, and MariaDB's tools read at most {MAX_LINE_BYTES} bytes of an option-file line",
            line.len()
        ));
    }
    Ok(line)
}

/// How a value reads best in a file for people: bare when MariaDB reads it back unchanged
/// that way, otherwise [`quote`]d. Used for the annotated option file.
pub fn display_value(value: &str) -> std::result::Result<String, String> {
    let bare = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.contains(['#', '\\', '"', '\'']);
    if bare || value.is_empty() {
        Ok(value.to_string())
    } else {
        quote(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# comment
[client]
user = repman
password = "p\"a ss#word"
socket=/tmp/my.sock
[dbjobs]
example-log = /tmp/x.log   # trailing comment
receive_bind='0.0.0.0'
flag
note=a#b
odd="a\qb"
"#;

    #[test]
    fn parses_like_mariadb() {
        let f = OptionFile::parse(SAMPLE).unwrap();
        assert_eq!(f.get("client", "user"), Some("repman"));
        assert_eq!(f.get("client", "password"), Some("p\"a ss#word"));
        assert_eq!(f.get("dbjobs", "example_log"), Some("/tmp/x.log"));
        assert_eq!(f.get("dbjobs", "receive-bind"), Some("0.0.0.0"));
        assert_eq!(f.get("dbjobs", "flag"), Some(""));
        // A # outside quotes is a comment even without a space; an unknown escape keeps its
        // backslash.
        assert_eq!(f.get("dbjobs", "note"), Some("a"));
        assert_eq!(f.get("dbjobs", "odd"), Some("a\\qb"));
        assert_eq!(f.entry("client", "socket").unwrap().line, 6);
    }

    #[test]
    fn refuses_what_mariadb_would_misread() {
        for bad in [
            "!include /etc/x.cnf",
            "user=x",
            "[client]\npassword='open",
            "[client]\npassword=\"closed\" trailing",
            "[client]\npassword=voil\u{e0}",
            "[client\nuser=x",
        ] {
            assert!(OptionFile::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("[client]\npassword={}", "x".repeat(MAX_LINE_BYTES));
        let e = OptionFile::parse(&long).unwrap_err();
        assert!(e.message.contains("at most 4094 bytes"), "{e}");
        // Quoted, the same character is fine.
        let f = OptionFile::parse("[client]\npassword=\"voil\u{e0}\"").unwrap();
        assert_eq!(f.get("client", "password"), Some("voil\u{e0}"));
    }

    #[test]
    fn the_writer_refuses_nul_and_overlong_lines() {
        assert!(option_line("password", "a\0b").unwrap_err().contains("NUL"));
        let fits = "x".repeat(MAX_LINE_BYTES - "password=\"\"".len());
        assert!(option_line("password", &fits).is_ok());
        let e = option_line("password", &format!("{fits}x")).unwrap_err();
        assert!(e.contains("4094"), "{e}");
    }

    /// Values that broke option files or could: newline (found by fuzzing), quotes,
    /// backslashes before every letter, comment characters, spaces at both ends, the 0xA0
    /// byte of UTF-8 characters, control characters.
    fn hard_values() -> Vec<String> {
        let mut v: Vec<String> = [
            "a\nb",
            "\"",
            "'",
            "\\",
            "a\\",
            "\\\\n",
            "#x",
            ";x",
            " lead",
            "trail ",
            "\t",
            "voil\u{e0}",
            "\u{a0}",
            "\r\n",
            "\u{8}\u{b}\u{c}\u{1}\u{7f}",
            "pass\"w\\o\nr#d; \tü\u{e0}",
            "",
            "=",
            "a=b",
            "[x]",
            "!include /x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend((b'a'..=b'z').map(|c| format!("\\{}", c as char)));
        v.extend((1u8..0x80).map(|b| format!("x{}y", b as char)));
        v
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads() {
        for value in hard_values() {
            let text = format!("[client]\n{}\n", option_line("password", &value).unwrap());
            let f = OptionFile::parse(&text).unwrap_or_else(|e| panic!("{value:?}: {e}"));
            assert_eq!(f.get("client", "password"), Some(value.as_str()), "{text}");
            let shown = display_value(&value).unwrap();
            let f = OptionFile::parse(&format!("[x]\nk={shown}\n")).unwrap();
            assert_eq!(f.get("x", "k"), Some(value.as_str()), "{shown}");
        }
    }

    /// What MariaDB 10.11's own parser makes of `text` for group `client`, via
    /// `my_print_defaults` (one `--key=value` per line; a value holding a newline spans lines).
    fn mariadb_reads(text: &str) -> Vec<u8> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.cnf");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = std::process::Command::new("my_print_defaults")
            .arg(format!("--defaults-file={}", path.display()))
            .arg("client")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run my_print_defaults ({e}): install mariadb-client (scripts/setup.sh does)")
            });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn mariadb_reads_what_the_writer_writes() {
        let values = hard_values();
        let mut text = String::from("[client]\n");
        let mut expected = Vec::new();
        for (i, value) in values.iter().enumerate() {
            text.push_str(&option_line(&format!("k{i}"), value).unwrap());
            text.push('\n');
            expected.extend_from_slice(format!("--k{i}={value}\n").as_bytes());
        }
        assert_eq!(
            String::from_utf8_lossy(&mariadb_reads(&text)),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn the_reader_agrees_with_mariadb_on_what_it_accepts() {
        // Lines an operator may write: (line, the key as MariaDB prints it).
        let lines = [
            ("k=plain", "k"),
            ("k = spaced out  ", "k"),
            ("k=a#b", "k"),
            ("k=\"a#b\" # c", "k"),
            ("k='single \"quoted\"'", "k"),
            ("k=\"double 'quoted'\"", "k"),
            ("k=a\\nb\\tc\\sd\\qe\\", "k"),
            ("k=\"ends with \\\"", "k"),
            ("k=\"\\\\\"", "k"),
            ("k=\"\"", "k"),
            ("k=", "k"),
            ("k=\"a\"b\"", "k"),
            ("k=voil\u{e0}!", "k"),
            ("k=x\u{b}", "k"),
            ("  k-dash=1", "k-dash"),
            ("k=\"tab\tinside\"", "k"),
        ];
        for (line, key) in lines {
            let text = format!("[client]\n{line}\n");
            let ours = OptionFile::parse(&text).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let value = ours.get("client", key).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&mariadb_reads(&text)),
                format!("--{key}={value}\n"),
                "{line:?}"
            );
        }
        let bare = "[client]\nk\n";
        assert_eq!(
            OptionFile::parse(bare).unwrap().get("client", "k"),
            Some("")
        );
        assert_eq!(mariadb_reads(bare), b"--k\n");
        // Group names: case-insensitive, trailing spaces and text after ] ignored, a leading
        // space kept (so that group is not [client]).
        let groups = "[CLIENT ] text\na=1\n[ client]\nb=2\n";
        let ours = OptionFile::parse(groups).unwrap();
        assert_eq!(
            (ours.get("client", "a"), ours.get("client", "b")),
            (Some("1"), None)
        );
        assert_eq!(mariadb_reads(groups), b"--a=1\n");
    }
}
