//! Routing and filter rules, in the spirit of Heka's message matchers: drop or keep lines by
//! app, level, stream or a regex on the line, and add fields.
//!
//! ```toml
//! # logpipe.toml — rules are tried in order; the first `drop` or `keep` that matches decides,
//! # every matching rule's `add_fields` are added.
//! [[rule]]
//! name = "no health checks"
//! app = "shop/web"
//! regex = 'GET /healthz'
//! action = "drop"
//!
//! [[rule]]
//! app_regex = '^shop/'
//! add_fields = { team = "shop" }
//!
//! [[rule]]
//! level = ["debug", "trace"]
//! action = "drop"
//! ```
use std::{collections::BTreeMap, path::Path};

use regex::Regex;
use serde::Deserialize;

use drover_search::Level;

/// A rules file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not readable.
    #[error("cannot read the rules file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or unknown keys, or wrong types.
    #[error("invalid rules file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and where (line and column from the TOML parser).
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Option<String>,
    app: Option<String>,
    app_regex: Option<String>,
    #[serde(default)]
    level: OneOrMany,
    stream: Option<String>,
    regex: Option<String>,
    action: Option<Action>,
    #[serde(default)]
    add_fields: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

/// What a matching rule does to the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Index it (stops the search for a deciding rule).
    Keep,
    /// Do not index it (counted as filtered).
    Drop,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Its name, for metrics and messages.
    pub name: String,
    app: Option<String>,
    app_regex: Option<Regex>,
    levels: Vec<Option<Level>>,
    stream: Option<String>,
    regex: Option<Regex>,
    action: Option<Action>,
    add_fields: BTreeMap<String, String>,
}

/// The compiled rules.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// What the rules decided for a line.
#[derive(Debug, Default, PartialEq)]
pub struct Decision<'a> {
    /// Dropped by this rule.
    pub dropped_by: Option<&'a str>,
    /// Fields to add.
    pub add_fields: Vec<(&'a str, &'a str)>,
}

/// The parts of a line rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// App ID.
    pub app: &'a str,
    /// Level, if any.
    pub level: Option<Level>,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// The line.
    pub line: &'a str,
}

impl Rules {
    /// No rules: every line is kept.
    pub fn none() -> Self {
        Self::default()
    }

    /// Loads a TOML rules file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| RulesError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses rules from TOML text; the error says which rule and field is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        let mut rules = Vec::new();
        for (i, spec) in file.rule.into_iter().enumerate() {
            let name = spec.name.clone().unwrap_or_else(|| format!("rule[{i}]"));
            let regex = |field: &str, re: &Option<String>| -> Result<Option<Regex>, String> {
                re.as_deref()
                    .map(|r| {
                        Regex::new(r).map_err(|e| format!("{name}: {field}: invalid regex: {e}"))
                    })
                    .transpose()
            };
            let levels = match &spec.level {
                OneOrMany::None => vec![],
                OneOrMany::One(s) => vec![s.clone()],
                OneOrMany::Many(v) => v.clone(),
            }
            .into_iter()
            .map(|s| match s.as_str() {
                "none" | "" => Ok(None),
                _ => Level::parse(&s).map(Some).ok_or_else(|| {
                    format!("{name}: level: unknown level {s:?} (use trace, debug, info, warn, error, fatal or none)")
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
            if let Some(s) = &spec.stream {
                if s != "stdout" && s != "stderr" {
                    return Err(format!(
                        "{name}: stream: must be stdout or stderr, not {s:?}"
                    ));
                }
            }
            if spec.action.is_none() && spec.add_fields.is_empty() {
                return Err(format!(
                    "{name}: a rule needs an action (\"keep\" or \"drop\") or add_fields"
                ));
            }
            rules.push(Rule {
                app_regex: regex("app_regex", &spec.app_regex)?,
                regex: regex("regex", &spec.regex)?,
                name,
                app: spec.app,
                levels,
                stream: spec.stream,
                action: spec.action,
                add_fields: spec.add_fields,
            });
        }
        Ok(Self { rules })
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules to a line.
    pub fn decide(&self, s: Subject<'_>) -> Decision<'_> {
        let mut d = Decision::default();
        for r in &self.rules {
            if !r.matches(s) {
                continue;
            }
            d.add_fields
                .extend(r.add_fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            match r.action {
                Some(Action::Drop) => {
                    d.dropped_by = Some(&r.name);
                    return d;
                }
                Some(Action::Keep) => return d,
                None => {}
            }
        }
        d
    }
}

impl Rule {
    fn matches(&self, s: Subject<'_>) -> bool {
        self.app.as_deref().is_none_or(|a| a == s.app)
            && self.app_regex.as_ref().is_none_or(|r| r.is_match(s.app))
            && (self.levels.is_empty() || self.levels.contains(&s.level))
            && self.stream.as_deref().is_none_or(|x| x == s.stream)
            && self.regex.as_ref().is_none_or(|r| r.is_match(s.line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(app: &'a str, level: Option<Level>, line: &'a str) -> Subject<'a> {
        Subject {
            app,
            level,
            stream: "stdout",
            line,
        }
    }

    const RULES: &str = r#"
[[rule]]
name = "no health checks"
app = "shop/web"
regex = 'GET /healthz'
action = "drop"

[[rule]]
app_regex = '^shop/'
add_fields = { team = "shop" }

[[rule]]
app = "shop/web"
level = "error"
action = "keep"

[[rule]]
level = ["debug", "trace"]
action = "drop"
"#;

    #[test]
    fn first_deciding_rule_wins_and_fields_accumulate() {
        let rules = Rules::parse(RULES).unwrap();
        assert_eq!(rules.len(), 4);
        let d = rules.decide(subject("shop/web", Some(Level::Info), "GET /healthz 200"));
        assert_eq!(d.dropped_by, Some("no health checks"));
        let d = rules.decide(subject("shop/web", Some(Level::Error), "boom"));
        assert_eq!(d.dropped_by, None);
        assert_eq!(d.add_fields, vec![("team", "shop")]);
        let d = rules.decide(subject("shop/db", Some(Level::Debug), "x"));
        assert_eq!(d.dropped_by, Some("rule[3]"));
        assert_eq!(d.add_fields, vec![("team", "shop")]);
        let d = rules.decide(subject("other", None, "x"));
        assert_eq!(d, Decision::default());
    }

    #[test]
    fn errors_name_the_rule_and_field() {
        let e = Rules::parse("[[rule]]\nregex = '('\naction = \"drop\"").unwrap_err();
        assert!(e.contains("rule[0]: regex: invalid regex"), "{e}");
        let e = Rules::parse("[[rule]]\nlevel = 'loud'\naction = \"drop\"").unwrap_err();
        assert!(e.contains("unknown level \"loud\""), "{e}");
        let e = Rules::parse("[[rule]]\naction = \"delete\"").unwrap_err();
        assert!(e.contains("action"), "{e}");
        let e = Rules::parse("[[rule]]\napp = 'x'\nactoin = 'drop'").unwrap_err();
        assert!(e.contains("unknown field `actoin`"), "{e}");
        let e = Rules::parse("[[rule]]\napp = 'x'").unwrap_err();
        assert!(e.contains("needs an action"), "{e}");
        let e = Rules::parse("[[rule]]\nstream = 'stdin'\naction='drop'").unwrap_err();
        assert!(e.contains("stream"), "{e}");
    }
}
