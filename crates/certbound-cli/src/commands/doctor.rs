//! `certbound doctor`: readiness checks on a data directory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use certbound_registry::doctor::{self, DoctorOptions, Finding};
use certbound_registry::registry::Registry;

use crate::output::{now, print_json};

/// Runs the checks and prints the findings; the exit code is 0 (nothing
/// above info), 1 (warnings) or 2 (errors).
pub async fn run(dir: &Path, json: bool, expiry_days: u64) -> anyhow::Result<ExitCode> {
    // A directory the checks cannot even read is an error (exit 2), not a
    // warning: report it here instead of through the generic exit code 1.
    let findings = match collect(dir, expiry_days).await {
        Ok(findings) => findings,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let code = doctor::exit_code(&findings);
    if json {
        print_json(&serde_json::json!({
            "dir": dir.display().to_string(),
            "exit_code": code,
            "findings": findings,
        }))?;
    } else {
        print_table(dir, &findings);
    }
    Ok(ExitCode::from(code))
}

async fn collect(dir: &Path, expiry_days: u64) -> anyhow::Result<Vec<Finding>> {
    let reg = Registry::open(dir)
        .await
        .with_context(|| format!("cannot open data directory {}", dir.display()))?;
    let options = DoctorOptions {
        expiry_days,
        ..DoctorOptions::default()
    };
    let findings = doctor::run(&reg, &options, now()).await;
    reg.close().await;
    Ok(findings?)
}

fn print_table(dir: &Path, findings: &[Finding]) {
    if findings.is_empty() {
        println!(
            "{}: all {} checks passed ({})",
            dir.display(),
            doctor::CHECKS.len(),
            doctor::CHECKS.join(", ")
        );
        return;
    }
    let check_width = findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(5)
        .max("CHECK".len());
    println!("{:<8} {:<check_width$} PROBLEM / FIX", "SEVERITY", "CHECK");
    for f in findings {
        println!(
            "{:<8} {:<check_width$} {}",
            f.severity.as_str(),
            f.check,
            f.message
        );
        println!("{:<8} {:<check_width$}   fix: {}", "", "", f.fix);
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    println!(
        "\n{} error(s), {} warning(s), {} info",
        count(doctor::Severity::Error),
        count(doctor::Severity::Warning),
        count(doctor::Severity::Info)
    );
}
