//! Alertmanager's label matchers: `name="value"`, `name!="value"`, `name=~"regex"`,
//! `name!~"regex"` (regexes anchored at both ends), used by silences, inhibition rules and
//! the API's `filter`.
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::alert::LabelSet;

/// One matcher, in the Alertmanager v2 API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The value or the regex.
    pub value: String,
    /// `value` is a regex.
    pub is_regex: bool,
    /// `=`/`=~` (true) or `!=`/`!~` (false).
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// An equality matcher.
    pub fn eq(name: &str, value: &str) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            is_regex: false,
            is_equal: true,
        }
    }

    /// Parses `name="value"` (also `name=value`, and the operators `!=`, `=~`, `!~`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let name_end = s
            .find(['=', '!'])
            .ok_or_else(|| format!("{s:?} is not a matcher: write name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""))?;
        let name = s[..name_end].trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!(
                "{s:?}: {name:?} is not a label name (letters, digits, _)"
            ));
        }
        let rest = &s[name_end..];
        let (is_equal, is_regex, value) = if let Some(v) = rest.strip_prefix("=~") {
            (true, true, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (false, true, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (false, false, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (true, false, v)
        } else {
            return Err(format!("{s:?}: the operator must be =, !=, =~ or !~"));
        };
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(v) => v.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => value.to_string(),
        };
        let m = Self {
            name: name.into(),
            value,
            is_regex,
            is_equal,
        };
        m.compile()?;
        Ok(m)
    }

    /// The compiled matcher (the regex checked).
    pub fn compile(&self) -> Result<CompiledMatcher, String> {
        let re = if self.is_regex {
            Some(
                Regex::new(&format!("^(?:{})$", self.value))
                    .map_err(|e| format!("{}: bad regex {:?}: {e}", self.name, self.value))?,
            )
        } else {
            None
        };
        Ok(CompiledMatcher {
            m: self.clone(),
            re,
        })
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

/// A matcher ready to test label sets.
#[derive(Debug, Clone)]
pub struct CompiledMatcher {
    m: Matcher,
    re: Option<Regex>,
}

impl CompiledMatcher {
    /// The matcher.
    pub fn matcher(&self) -> &Matcher {
        &self.m
    }

    /// Whether the labels match (a missing label is the empty string, as in Alertmanager).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let v = labels.get(&self.m.name).map(String::as_str).unwrap_or("");
        let hit = match &self.re {
            Some(re) => re.is_match(v),
            None => v == self.m.value,
        };
        hit == self.m.is_equal
    }
}

/// Whether every matcher matches.
pub fn all_match(ms: &[CompiledMatcher], labels: &LabelSet) -> bool {
    ms.iter().all(|m| m.matches(labels))
}

/// Parses a list of matchers; the API's `filter` accepts `{a="b",c=~"d"}` as one string too.
pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for item in items {
        let s = item.as_ref().trim();
        let s = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(s);
        for part in split_top(s) {
            if !part.trim().is_empty() {
                out.push(Matcher::parse(&part)?);
            }
        }
    }
    Ok(out)
}

/// Splits on commas outside quotes.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                cur.push(c);
                continue;
            }
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators_and_missing_labels() {
        let l = labels(&[("app", "/shop"), ("severity", "critical")]);
        for (m, want) in [
            (r#"app="/shop""#, true),
            (r#"app!="/shop""#, false),
            (r#"app=~"/sh.*""#, true),
            (r#"app=~"sh""#, false), // anchored
            (r#"app!~"/x|/y""#, true),
            (r#"team="""#, true), // missing = empty
            ("severity=critical", true),
        ] {
            let c = Matcher::parse(m).unwrap().compile().unwrap();
            assert_eq!(c.matches(&l), want, "{m}");
        }
    }

    #[test]
    fn lists_and_errors() {
        let ms = parse_list(&[r#"{alertname="A",app=~"/a,b"}"#]).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].value, "/a,b");
        assert_eq!(ms[1].to_string(), r#"app=~"/a,b""#);
        assert!(Matcher::parse("app").unwrap_err().contains("not a matcher"));
        assert!(Matcher::parse(r#"app=~"(""#)
            .unwrap_err()
            .contains("bad regex"));
        assert!(Matcher::parse(r#"a b="c""#).is_err());
    }
}
