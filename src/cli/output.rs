//! Printing answers: a table for people, JSON (`--json`) for scripts. Write errors (a closed
//! pipe) surface as I/O errors, which `main` turns into exit 0 for a broken pipe.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use regkeep_domain::untrusted_text::{for_terminal, json_for_terminal};

use super::client::Refusal;

/// Prints a server answer — JSON with `--json`, else `human` — or reports the refusal; gives the
/// exit code.
pub fn finish<T: Serialize>(
    answer: Result<T, Refusal>,
    json: bool,
    human: impl FnOnce(&T) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    match answer {
        Ok(value) => {
            if json {
                self::json(&value)?;
            } else {
                human(&value)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => Ok(refusal.report()),
    }
}

/// The answer to a DELETE: `{"deleted": name}` with `--json`, else `Deleted <what> <name>`.
pub fn deleted<T>(
    answer: Result<T, Refusal>,
    json: bool,
    what: &str,
    name: &str,
) -> anyhow::Result<ExitCode> {
    finish(
        answer.map(|_| serde_json::json!({ "deleted": name })),
        json,
        |_| line(&format!("Deleted {what} {name}")),
    )
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    // The same JSON, with what a terminal could act on escaped.
    let text = json_for_terminal(&serde_json::to_string_pretty(value)?);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Prints rows under a header, aligned in columns.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    // Cells hold what the server answered, which can hold what a registry answered: no escape
    // sequence or control character reaches the terminal.
    for row in rows {
        table.add_row(
            row.iter()
                .map(|cell| for_terminal(cell))
                .collect::<Vec<_>>(),
        );
    }
    let mut out = std::io::stdout().lock();
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Prints `label: value` lines, labels aligned.
pub fn fields(pairs: &[(&str, String)]) -> anyhow::Result<()> {
    let width = pairs.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (label, value) in pairs {
        writeln!(out, "{label:width$}  {}", for_terminal(value))?;
    }
    Ok(())
}

/// Prints one line.
pub fn line(text: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{}", for_terminal(text))?;
    Ok(())
}
