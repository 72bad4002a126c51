//! Plugin arguments: PANDA's `-panda name:key=value,key=value` syntax, checked against the
//! arguments each plugin declares.

use std::collections::BTreeMap;

use crate::{PluginError, PluginInfo};

/// One argument a plugin accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgInfo {
    /// Its name (`filename`).
    pub name: &'static str,
    /// What it means, with its default (one line).
    pub help: &'static str,
}

/// Splits `name:key=value,key=value` (PANDA's `-panda` syntax) into the plugin's name and
/// its arguments. The arguments are checked when the plugin is loaded.
pub fn parse_spec(spec: &str) -> Result<(String, Vec<(String, String)>), PluginError> {
    let spec = spec.trim();
    let (name, rest) = match spec.split_once(':') {
        Some((name, rest)) => (name.trim(), rest),
        None => (spec, ""),
    };
    if name.is_empty() {
        return Err(PluginError::Malformed {
            spec: spec.to_string(),
            why: "it names no plugin (write NAME or NAME:key=value,key=value)".to_string(),
        });
    }
    let mut pairs = Vec::new();
    for item in rest.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(PluginError::Malformed {
                spec: spec.to_string(),
                why: format!("argument {item:?} has no '=' (write key=value)"),
            });
        };
        pairs.push((key.trim().to_string(), value.to_string()));
    }
    Ok((name.to_string(), pairs))
}

/// A plugin's arguments, checked against the ones it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    plugin: &'static str,
    values: BTreeMap<String, String>,
}

impl Args {
    /// Checks `pairs` against `info`'s arguments: an unknown or repeated argument is an
    /// error that lists the accepted ones.
    pub fn new(
        info: &PluginInfo,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Args, PluginError> {
        let mut values = BTreeMap::new();
        for (key, value) in pairs {
            if !info.arguments.iter().any(|arg| arg.name == key) {
                return Err(PluginError::UnknownArgument {
                    plugin: info.name,
                    argument: key,
                    accepted: accepted(info),
                });
            }
            if values.insert(key.clone(), value).is_some() {
                return Err(PluginError::BadArgument {
                    plugin: info.name,
                    argument: key,
                    why: "it is given twice".to_string(),
                });
            }
        }
        Ok(Args {
            plugin: info.name,
            values,
        })
    }

    /// The plugin these arguments are for.
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// The text of argument `name`, if given.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The text of argument `name`, or `default`.
    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or(default).to_string()
    }

    /// A boolean argument (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`), or `default`.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, PluginError> {
        match self.string(name) {
            None => Ok(default),
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "y" => Ok(true),
                "false" | "0" | "no" | "off" | "n" => Ok(false),
                _ => Err(self.bad(name, format!("{text:?} is not true or false"))),
            },
        }
    }

    /// An unsigned integer argument (decimal, or hexadecimal with `0x`), if given.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, PluginError> {
        self.string(name)
            .map(|text| parse_u64(text).map_err(|why| self.bad(name, why)))
            .transpose()
    }

    /// A list of unsigned integers separated by `:` (`,` separates arguments), if given.
    pub fn u64_list(&self, name: &str) -> Result<Vec<u64>, PluginError> {
        let Some(text) = self.string(name) else {
            return Ok(Vec::new());
        };
        text.split(':')
            .filter(|item| !item.trim().is_empty())
            .map(|item| parse_u64(item).map_err(|why| self.bad(name, why)))
            .collect()
    }

    /// An error about argument `name`.
    pub fn bad(&self, name: &str, why: impl Into<String>) -> PluginError {
        PluginError::BadArgument {
            plugin: self.plugin,
            argument: name.to_string(),
            why: why.into(),
        }
    }
}

/// Parses a decimal or `0x` hexadecimal number.
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a number (decimal, or hexadecimal with 0x)"))
}

fn accepted(info: &PluginInfo) -> String {
    if info.arguments.is_empty() {
        return "it takes no arguments".to_string();
    }
    let names: Vec<&str> = info.arguments.iter().map(|arg| arg.name).collect();
    format!("it accepts {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_into_name_and_pairs() {
        assert_eq!(
            parse_spec("coverage:filename=a.csv, full=true").unwrap(),
            (
                "coverage".to_string(),
                vec![
                    ("filename".to_string(), "a.csv".to_string()),
                    ("full".to_string(), "true".to_string())
                ]
            )
        );
        assert_eq!(parse_spec("coverage").unwrap().1, vec![]);
        assert!(matches!(
            parse_spec("coverage:filename"),
            Err(PluginError::Malformed { .. })
        ));
        assert!(matches!(
            parse_spec(":a=b"),
            Err(PluginError::Malformed { .. })
        ));
    }

    #[test]
    fn numbers_are_decimal_or_hex() {
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert_eq!(parse_u64("1_000"), Ok(1000));
        assert!(parse_u64("ten").is_err());
    }
}
