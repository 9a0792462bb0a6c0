//! The on-site SOP checklist engine: data-driven templates (`template`) and gate evaluation
//! (`engine`) over the answers kept in the work-order document (`order::checklist`). Pure:
//! no I/O.

pub mod demo;
pub mod engine;
pub mod template;

pub use crate::order::checklist::{Answer, AnswerRecord, Checklist, PartUse, PhotoRef, TemplateRef};
pub use engine::{check_answer, evaluate, Blocker, Evaluation, Flag, NaReason, StepState, StepStatus};
pub use template::{LedgerRole, Registry, Step, StepKind, Template, Text};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{file}: {}field `{field}`: {reason}", step.as_ref().map(|s| format!("step `{s}`: ")).unwrap_or_default())]
    Template { file: String, step: Option<String>, field: String, reason: String },
    #[error("template `{id}` version {version} already exists with different content; publish a new version")]
    VersionExists { id: String, version: u32 },
    #[error("unknown template `{id}`")]
    UnknownTemplate { id: String },
    #[error("template `{id}` version {version} is not on this device")]
    TemplateMissing { id: String, version: u32 },
    #[error("no checklist has been started for this order")]
    NotStarted,
    #[error("a checklist (`{id}` v{version}) is already running for this order")]
    AlreadyStarted { id: String, version: u32 },
    #[error("unknown step `{step}`")]
    UnknownStep { step: String },
    #[error("step `{step}` is not open yet: waiting for {}", waiting_for.join(", "))]
    OutOfOrder { step: String, waiting_for: Vec<String> },
    #[error("step `{step}` does not apply to this order")]
    NotApplicable { step: String },
    #[error("step `{step}` is closed: {reason}")]
    Closed { step: String, reason: String },
    #[error("step `{step}` takes a {expected} answer, not a {got}")]
    WrongType { step: String, expected: String, got: String },
    #[error("step `{step}`: invalid `{field}`: {reason}")]
    Invalid { step: String, field: String, reason: String },
    #[error("step `{step}` cannot be marked not applicable")]
    NaNotAllowed { step: String },
    #[error("the order cannot be completed: {count} step(s) still block it (first: {first})")]
    Blocked { count: usize, first: String },
}

/// The risk text of every consent step of the built-in templates (each once): what a
/// verifier shows beside a consent whose hash ([`template::risk_hash`]) it matches.
pub fn builtin_consent_texts() -> Result<Vec<Text>, Error> {
    let mut out: Vec<Text> = Vec::new();
    for (file, source) in template::BUILTIN {
        for step in Template::parse(file, source)?.steps {
            if let StepKind::Consent { risk, .. } = step.kind {
                if !out.contains(&risk) {
                    out.push(risk);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
