//! ty's findings as WIT `diagnostic` records.
//!
//! `monty-type-checking` hands diagnostics out only rendered, one format per
//! check, so a failed check is rendered twice: as JSON (rule, message,
//! positions) and in ty's full form (what a person or a model reads, and the
//! severity its headline carries). Both list the findings in the same order;
//! the full form is split at each finding's headline.

use serde::Deserialize;

use crate::bindings::exports::ex_monty::types::checker::{Diagnostic, Severity};

#[derive(Deserialize)]
struct JsonDiagnostic {
    code: Option<String>,
    name: Option<String>,
    message: Option<String>,
    filename: Option<String>,
    location: Option<JsonLocation>,
    end_location: Option<JsonLocation>,
}

#[derive(Deserialize, Clone, Copy)]
struct JsonLocation {
    row: u32,
    column: u32,
}

/// One finding of the full rendering: its severity and rule (from the
/// headline, `error[rule]: ...`) and its text.
struct Rendered {
    severity: Severity,
    rule: String,
    text: String,
}

/// Builds the records. `path` is the file the code was checked as, reported
/// as `script_name`.
pub fn build(
    json: &str,
    full: &str,
    code: &str,
    path: &str,
    script_name: &str,
) -> Result<Vec<Diagnostic>, String> {
    let parsed: Vec<JsonDiagnostic> = serde_json::from_str(json)
        .map_err(|e| format!("cannot read the type checker's diagnostics: {e}"))?;
    let rendered = split_full(full);
    let lines: Vec<&str> = code.lines().collect();
    Ok(parsed
        .into_iter()
        .enumerate()
        .map(|(index, found)| {
            let rule = found
                .code
                .or(found.name)
                .unwrap_or_else(|| "unknown".to_owned());
            // The same finding of the full rendering (same position in the
            // same order, same rule), if there is one.
            let full = rendered.get(index).filter(|r| r.rule == rule);
            let file = match found.filename.as_deref() {
                Some(name) if name.trim_start_matches('/') == path => script_name.to_owned(),
                Some(name) => name.trim_start_matches('/').to_owned(),
                None => script_name.to_owned(),
            };
            let start = found.location;
            let end = found.end_location.or(start);
            let line = start.map_or(0, |l| l.row);
            let source_line = line
                .checked_sub(1)
                .and_then(|i| lines.get(i as usize))
                .map(|l| (*l).to_owned())
                .unwrap_or_default();
            let message = found.message.unwrap_or_default();
            Diagnostic {
                severity: full.map_or(Severity::Error, |r| r.severity),
                rendered: full.map_or_else(
                    || format!("error[{rule}]: {message}\n --> {file}:{line}"),
                    |r| r.text.clone(),
                ),
                rule,
                message,
                file,
                line,
                column: start.map_or(0, |l| l.column),
                end_line: end.map_or(0, |l| l.row),
                end_column: end.map_or(0, |l| l.column),
                source_line,
            }
        })
        .collect())
}

/// Splits ty's full rendering at each headline (`severity[rule]: message`
/// at the start of a line).
fn split_full(full: &str) -> Vec<Rendered> {
    let mut found: Vec<Rendered> = Vec::new();
    for line in full.lines() {
        if let Some((severity, rule)) = headline(line) {
            found.push(Rendered {
                severity,
                rule,
                text: String::new(),
            });
        }
        if let Some(current) = found.last_mut() {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    for rendered in &mut found {
        let trimmed = rendered.text.trim_end().len();
        rendered.text.truncate(trimmed);
    }
    found
}

fn headline(line: &str) -> Option<(Severity, String)> {
    let (severity, rest) = line.split_once('[')?;
    let severity = match severity {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        "info" => Severity::Info,
        "fatal" => Severity::Fatal,
        _ => return None,
    };
    let (rule, rest) = rest.split_once(']')?;
    let valid_rule = !rule.is_empty()
        && rule
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (valid_rule && rest.starts_with(':')).then(|| (severity, rule.to_owned()))
}
