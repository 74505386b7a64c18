//! Settings declared once: name, type, default and one line of documentation.
//!
//! Like ripgrep's flag table, every `[dbjobs]` setting exists in exactly one declaration,
//! written with [`crate::declare_settings!`]. The declaration gives:
//! * a typed struct the plugin (or the host) reads when a job starts, before it listens or
//!   touches the server, so a bad value is a clear configuration error and never a failure
//!   half-way through;
//! * the [`SettingDecl`] list the plugin hands the host in its [`crate::PluginInfo`], so the
//!   host refuses an unknown name (naming the closest known one) or a bad value before any job
//!   runs, and documents every setting (`dbjobs settings`, the annotated option file,
//!   `plugins/README.md`).
//!
//! ```
//! use dbjobs_sdk::declare_settings;
//!
//! declare_settings! {
//!     /// How the hello plugin greets.
//!     pub struct HelloSettings {
//!         /// Who to greet.
//!         pub hello_name: String = "world",
//!         /// How many times, at most 10.
//!         pub hello_times: u64 = "1",
//!     }
//! }
//!
//! let s = HelloSettings::read(&|name: &str| (name == "hello_times").then(|| "3".to_string()))
//!     .unwrap();
//! assert_eq!((s.hello_name.as_str(), s.hello_times), ("world", 3));
//! assert_eq!(HelloSettings::DECLS[1].name, "hello_times");
//! ```

use std::path::PathBuf;

use crate::abi::SettingKind;
use crate::error::{JobError, ServerState};

/// The type of a setting as declared: its kind and, for a choice, the allowed words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingType {
    /// What kind of value.
    pub kind: SettingKind,
    /// The allowed values of a [`SettingKind::Choice`]; empty otherwise.
    pub choices: &'static [&'static str],
}

impl SettingType {
    /// A type without choices.
    pub const fn of(kind: SettingKind) -> Self {
        SettingType { kind, choices: &[] }
    }

    /// One of `choices`.
    pub const fn choice(choices: &'static [&'static str]) -> Self {
        SettingType {
            kind: SettingKind::Choice,
            choices,
        }
    }

    /// Check a value's text against the type; the error says what was expected.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let v = value.trim();
        match self.kind {
            SettingKind::Integer => parse_integer(v).map(|_| ()),
            SettingKind::Boolean => parse_bool(v).map(|_| ()),
            SettingKind::Choice if !self.choices.iter().any(|c| c.eq_ignore_ascii_case(v)) => {
                Err(format!("expected one of {}", self.choices.join(", ")))
            }
            _ => Ok(()),
        }
    }

    /// How the documentation names it: `integer`, `one of online, full`, ...
    pub fn describe(&self) -> String {
        match self.kind {
            SettingKind::Choice => format!("one of {}", self.choices.join(", ")),
            k => k.as_str().to_string(),
        }
    }
}

/// One declared setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingDecl {
    /// The name in `[dbjobs]`, with `_`.
    pub name: &'static str,
    /// The type of its value.
    pub ty: SettingType,
    /// The default, as written in the option file; empty: unset.
    pub default: &'static str,
    /// One line of documentation.
    pub doc: &'static str,
}

impl SettingDecl {
    /// The documentation line without the spaces doc comments leave around it.
    pub fn doc_line(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A value type a setting can be read as.
pub trait FromSetting: Sized {
    /// How it is declared.
    const TYPE: SettingType;
    /// Parse the (trimmed) text of the option file; the error says what was expected.
    fn from_setting(text: &str) -> Result<Self, String>;
}

fn parse_integer(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| "expected a non-negative integer".to_string())
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

macro_rules! integer_settings {
    ($($t:ty),*) => {$(
        impl FromSetting for $t {
            const TYPE: SettingType = SettingType::of(SettingKind::Integer);
            fn from_setting(text: &str) -> Result<Self, String> {
                let n = parse_integer(text)?;
                <$t>::try_from(n).map_err(|_| format!("expected at most {}", <$t>::MAX))
            }
        }
    )*};
}
integer_settings!(u64, u32, u16, usize);

impl FromSetting for bool {
    const TYPE: SettingType = SettingType::of(SettingKind::Boolean);
    fn from_setting(text: &str) -> Result<Self, String> {
        parse_bool(text)
    }
}

impl FromSetting for String {
    const TYPE: SettingType = SettingType::of(SettingKind::Text);
    fn from_setting(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

impl FromSetting for PathBuf {
    const TYPE: SettingType = SettingType::of(SettingKind::Path);
    fn from_setting(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
}

/// An optional value: empty text (or an unset setting without a default) is `None`.
impl<T: FromSetting> FromSetting for Option<T> {
    const TYPE: SettingType = T::TYPE;
    fn from_setting(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(None)
        } else {
            T::from_setting(text).map(Some)
        }
    }
}

/// Where raw setting texts come from: the plugin's [`crate::Host`], the host's own settings,
/// or a closure in tests.
pub trait SettingSource {
    /// The raw text of setting `name`, `None` when unset.
    fn raw_setting(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> SettingSource for F {
    fn raw_setting(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Read one declared setting: its value or its default, parsed as `T`. A value that does not
/// parse is a configuration error naming the setting, with the server untouched (settings are
/// read before a job does anything).
pub fn read_setting<T: FromSetting>(
    source: &(impl SettingSource + ?Sized),
    decl: &SettingDecl,
) -> Result<T, JobError> {
    let (text, from_default) = match source.raw_setting(decl.name) {
        Some(v) => (v, false),
        None => (decl.default.to_string(), true),
    };
    T::from_setting(text.trim()).map_err(|why| {
        let what = if from_default {
            format!("the default of setting {}", decl.name)
        } else {
            format!("setting {}", decl.name)
        };
        JobError::config(format!("{what}={text:?} is not valid: {why}"))
            .with_hint(format!(
                "fix {} in [dbjobs] of the option file (or --set {}=...): {}",
                decl.name,
                decl.name,
                decl.doc_line()
            ))
            .with_state(ServerState::Untouched)
    })
}

/// Declare a settings struct: each field with its doc comment, type and default text.
///
/// Generates the struct, `DECLS: &[SettingDecl]` (for [`crate::PluginInfo::settings`] and
/// documentation) and `read(source) -> Result<Self, JobError>`. Every default is parsed by
/// the same code as a configured value, so a unit test that calls `read` with nothing set
/// proves the defaults valid. See the [module docs](crate::settings) for an example.
#[macro_export]
macro_rules! declare_settings {
    (
        $(#[$smeta:meta])*
        $svis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident : $ty:ty = $default:literal
            ),* $(,)?
        }
    ) => {
        $(#[$smeta])*
        #[derive(Clone, Debug, PartialEq)]
        $svis struct $name {
            $(
                $(#[doc = $doc])*
                $fvis $field: $ty,
            )*
        }

        impl $name {
            /// The declarations of these settings: name, type, default, documentation.
            pub const DECLS: &'static [$crate::settings::SettingDecl] = &[
                $(
                    $crate::settings::SettingDecl {
                        name: stringify!($field),
                        ty: <$ty as $crate::settings::FromSetting>::TYPE,
                        default: $default,
                        doc: concat!($($doc, " "),*),
                    },
                )*
            ];

            /// Read every setting from `source` (defaults for those unset). The first value
            /// that does not parse is a configuration error naming it.
            pub fn read(
                source: &(impl $crate::settings::SettingSource + ?Sized),
            ) -> ::std::result::Result<Self, $crate::JobError> {
                let mut decls = Self::DECLS.iter();
                Ok($name {
                    $(
                        $field: $crate::settings::read_setting::<$ty>(
                            source,
                            decls.next().expect("one declaration per field"),
                        )?,
                    )*
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    enum Mode {
        Online,
        Full,
    }

    impl FromSetting for Mode {
        const TYPE: SettingType = SettingType::choice(&["online", "full"]);
        fn from_setting(text: &str) -> Result<Self, String> {
            match text.to_ascii_lowercase().as_str() {
                "online" => Ok(Mode::Online),
                "full" => Ok(Mode::Full),
                _ => Err(format!("expected one of {}", Self::TYPE.choices.join(", "))),
            }
        }
    }

    crate::declare_settings! {
        /// Test settings.
        struct TestSettings {
            /// How to restore.
            /// Second line.
            mode: Mode = "online",
            /// A count.
            count: u16 = "4",
            /// A path, unset by default.
            dir: Option<PathBuf> = "",
            /// A flag.
            flag: bool = "false",
        }
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_parse() {
        let s = TestSettings::read(&none).unwrap();
        assert_eq!(
            s,
            TestSettings {
                mode: Mode::Online,
                count: 4,
                dir: None,
                flag: false
            }
        );
        assert_eq!(
            TestSettings::DECLS[0].doc_line(),
            "How to restore. Second line."
        );
        assert_eq!(TestSettings::DECLS[0].ty.describe(), "one of online, full");
    }

    #[test]
    fn values_are_parsed_and_bad_ones_name_the_setting() {
        let set = |name: &str| match name {
            "mode" => Some(" FULL ".to_string()),
            "dir" => Some("/x".to_string()),
            "flag" => Some("on".to_string()),
            _ => None,
        };
        let s = TestSettings::read(&set).unwrap();
        assert_eq!(s.mode, Mode::Full);
        assert_eq!(s.dir, Some(PathBuf::from("/x")));
        assert!(s.flag);
        let bad = |name: &str| (name == "count").then(|| "70000".to_string());
        let e = TestSettings::read(&bad).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Config);
        assert_eq!(e.state, ServerState::Untouched);
        assert!(
            e.message
                .starts_with("setting count=\"70000\" is not valid: expected at most 65535"),
            "{e}"
        );
    }

    #[test]
    fn types_check_text() {
        assert!(SettingType::of(SettingKind::Integer).check("12").is_ok());
        assert!(SettingType::of(SettingKind::Integer).check("-1").is_err());
        assert!(SettingType::of(SettingKind::Boolean)
            .check("maybe")
            .is_err());
        assert!(SettingType::choice(&["a", "b"]).check("c").is_err());
        assert!(SettingType::of(SettingKind::Text).check("").is_ok());
    }
}
