//! Checklist records and conversions (the SOP engine's view for apps).

use std::time::SystemTime;

use onsite_core::device::ChecklistView as CoreView;
use onsite_core::sop;

use crate::orders::{from_time, to_time};
use crate::signature::{strokes_in, strokes_out, Stroke};
use crate::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LocalizedText {
    pub zh: String,
    pub en: String,
}

impl From<&sop::Text> for LocalizedText {
    fn from(t: &sop::Text) -> Self {
        Self { zh: t.zh.clone(), en: t.en.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TemplateInfo {
    pub id: String,
    pub version: u32,
    pub title: LocalizedText,
    pub source: Option<String>,
    pub step_count: u32,
    pub sha256: String,
}

impl From<&sop::Template> for TemplateInfo {
    fn from(t: &sop::Template) -> Self {
        Self {
            id: t.id.clone(),
            version: t.version,
            title: (&t.title).into(),
            source: t.source.clone(),
            step_count: t.steps.len() as u32,
            sha256: t.sha256.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChoiceOption {
    pub id: String,
    pub label: LocalizedText,
}

#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum StepKind {
    Confirmation,
    Photo {
        min: u32,
        max: u32,
    },
    Measurement {
        unit: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    Note,
    Choice {
        options: Vec<ChoiceOption>,
        multiple: bool,
    },
    Barcode {
        expected_field: Option<String>,
        expected_from_step: Option<String>,
    },
    Parts,
    Timer {
        min_seconds: u32,
    },
    /// Show `risk` exactly; send back `risk_sha256` with the customer's answer.
    Consent {
        risk: LocalizedText,
        risk_sha256: String,
    },
}

impl From<&sop::StepKind> for StepKind {
    fn from(k: &sop::StepKind) -> Self {
        match k {
            sop::StepKind::Confirmation => StepKind::Confirmation,
            sop::StepKind::Photo { min, max } => StepKind::Photo { min: *min, max: *max },
            sop::StepKind::Measurement { unit, min, max } => StepKind::Measurement { unit: unit.clone(), min: *min, max: *max },
            sop::StepKind::Note => StepKind::Note,
            sop::StepKind::Choice { options, multiple } => {
                StepKind::Choice { options: options.iter().map(|o| ChoiceOption { id: o.id.clone(), label: (&o.label).into() }).collect(), multiple: *multiple }
            }
            sop::StepKind::Barcode { expected_field, expected_from_step, .. } => {
                StepKind::Barcode { expected_field: expected_field.clone(), expected_from_step: expected_from_step.clone() }
            }
            sop::StepKind::Parts => StepKind::Parts,
            sop::StepKind::Timer { min_seconds } => StepKind::Timer { min_seconds: *min_seconds },
            sop::StepKind::Consent { risk, risk_sha256 } => StepKind::Consent { risk: risk.into(), risk_sha256: risk_sha256.clone() },
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum StepState {
    Locked {
        waiting_for: Vec<String>,
    },
    Open,
    Done,
    /// `reason` is the engineer's when marked by hand, `None` when the step's condition is false.
    NotApplicable {
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum StepFlag {
    OutOfRange { value: f64, min: Option<f64>, max: Option<f64> },
    BarcodeMismatch { scanned: String, expected: Vec<String> },
    ConsentRefused,
    ObservationShort { seconds: i64, min_seconds: u32 },
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoRef {
    pub sha256: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PartUse {
    pub part_number: String,
    pub serial: String,
    pub quantity: u32,
    pub returned_serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum StepAnswer {
    Confirmed,
    Photos { photos: Vec<PhotoRef> },
    Measurement { value: f64 },
    Note { text: String },
    Choice { selected: Vec<String> },
    Barcode { scanned: String },
    Parts { parts: Vec<PartUse> },
    Observation { started: SystemTime, stopped: SystemTime, reproduced: bool },
    Consent { accepted: bool, risk_sha256: String, signer: String, strokes: Vec<Stroke> },
    NotApplicable { reason: String },
}

impl TryFrom<StepAnswer> for sop::Answer {
    type Error = ApiError;
    fn try_from(a: StepAnswer) -> Result<Self, ApiError> {
        Ok(match a {
            StepAnswer::Confirmed => sop::Answer::Confirmed,
            StepAnswer::Photos { photos } => {
                sop::Answer::Photos { photos: photos.into_iter().map(|p| sop::PhotoRef { sha256: p.sha256, label: p.label }).collect() }
            }
            StepAnswer::Measurement { value } => sop::Answer::Measurement { value },
            StepAnswer::Note { text } => sop::Answer::Note { text },
            StepAnswer::Choice { selected } => sop::Answer::Choice { selected },
            StepAnswer::Barcode { scanned } => sop::Answer::Barcode { scanned },
            StepAnswer::Parts { parts } => sop::Answer::Parts {
                parts: parts
                    .into_iter()
                    .map(|p| sop::PartUse { part_number: p.part_number, serial: p.serial, quantity: p.quantity, returned_serial: p.returned_serial })
                    .collect(),
            },
            StepAnswer::Observation { started, stopped, reproduced } => {
                sop::Answer::Observation { started: from_time(started), stopped: from_time(stopped), reproduced }
            }
            StepAnswer::Consent { accepted, risk_sha256, signer, strokes } => sop::Answer::consent(accepted, risk_sha256, signer, &strokes_in(strokes))?,
            StepAnswer::NotApplicable { reason } => sop::Answer::NotApplicable { reason },
        })
    }
}

impl From<&sop::Answer> for StepAnswer {
    fn from(a: &sop::Answer) -> Self {
        match a {
            sop::Answer::Confirmed => StepAnswer::Confirmed,
            sop::Answer::Photos { photos } => {
                StepAnswer::Photos { photos: photos.iter().map(|p| PhotoRef { sha256: p.sha256.clone(), label: p.label.clone() }).collect() }
            }
            sop::Answer::Measurement { value } => StepAnswer::Measurement { value: *value },
            sop::Answer::Note { text } => StepAnswer::Note { text: text.clone() },
            sop::Answer::Choice { selected } => StepAnswer::Choice { selected: selected.clone() },
            sop::Answer::Barcode { scanned } => StepAnswer::Barcode { scanned: scanned.clone() },
            sop::Answer::Parts { parts } => StepAnswer::Parts {
                parts: parts
                    .iter()
                    .map(|p| PartUse {
                        part_number: p.part_number.clone(),
                        serial: p.serial.clone(),
                        quantity: p.quantity,
                        returned_serial: p.returned_serial.clone(),
                    })
                    .collect(),
            },
            sop::Answer::Observation { started, stopped, reproduced } => {
                StepAnswer::Observation { started: to_time(*started), stopped: to_time(*stopped), reproduced: *reproduced }
            }
            sop::Answer::Consent { accepted, risk_sha256, signer, strokes, .. } => {
                StepAnswer::Consent { accepted: *accepted, risk_sha256: risk_sha256.clone(), signer: signer.clone(), strokes: strokes_out(strokes) }
            }
            sop::Answer::NotApplicable { reason } => StepAnswer::NotApplicable { reason: reason.clone() },
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AnswerRecord {
    pub step: String,
    pub answer: StepAnswer,
    pub at: SystemTime,
    pub monotonic_ms: u64,
    pub device: String,
}

impl From<&sop::AnswerRecord> for AnswerRecord {
    fn from(r: &sop::AnswerRecord) -> Self {
        Self { step: r.step.clone(), answer: (&r.value).into(), at: to_time(r.at), monotonic_ms: r.monotonic_ms, device: r.device.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Blocker {
    pub step: String,
    pub label: LocalizedText,
    pub reason: LocalizedText,
}

impl From<&sop::Blocker> for Blocker {
    fn from(b: &sop::Blocker) -> Self {
        Self { step: b.step.clone(), label: (&b.label).into(), reason: (&b.reason).into() }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChecklistStep {
    pub id: String,
    pub label: LocalizedText,
    pub help: Option<LocalizedText>,
    pub kind: StepKind,
    pub required: bool,
    pub na_allowed: bool,
    pub state: StepState,
    pub flags: Vec<StepFlag>,
    pub current: Option<AnswerRecord>,
    pub answer_count: u32,
    /// For a parts step: what its answer records in the spare-part ledger (`borrow`,
    /// `install`: each part's `returned_serial` is the faulty part taken out, `return`).
    pub ledger: Option<String>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChecklistView {
    pub template_id: String,
    pub template_version: u32,
    pub template_sha256: String,
    pub title: LocalizedText,
    pub steps: Vec<ChecklistStep>,
    /// Ids of the steps that can be answered now.
    pub open: Vec<String>,
    pub blockers: Vec<Blocker>,
}

impl From<CoreView> for ChecklistView {
    fn from(v: CoreView) -> Self {
        let open = v.evaluation.open().into_iter().map(String::from).collect();
        let steps = v
            .template
            .steps
            .iter()
            .zip(&v.evaluation.steps)
            .map(|(step, st)| ChecklistStep {
                id: step.id.clone(),
                label: (&step.label).into(),
                help: step.help.as_ref().map(Into::into),
                kind: (&step.kind).into(),
                required: step.required,
                na_allowed: step.na_allowed,
                ledger: step.ledger.map(|l| match l {
                    sop::LedgerRole::Borrow => "borrow".to_string(),
                    sop::LedgerRole::Install => "install".to_string(),
                    sop::LedgerRole::Return => "return".to_string(),
                }),
                state: match &st.state {
                    sop::StepState::Locked { waiting_for } => StepState::Locked { waiting_for: waiting_for.clone() },
                    sop::StepState::Open => StepState::Open,
                    sop::StepState::Done => StepState::Done,
                    sop::StepState::NotApplicable { reason: sop::NaReason::Condition } => StepState::NotApplicable { reason: None },
                    sop::StepState::NotApplicable { reason: sop::NaReason::Marked { reason } } => StepState::NotApplicable { reason: Some(reason.clone()) },
                },
                flags: st
                    .flags
                    .iter()
                    .map(|f| match f {
                        sop::Flag::OutOfRange { value, min, max } => StepFlag::OutOfRange { value: *value, min: *min, max: *max },
                        sop::Flag::BarcodeMismatch { scanned, expected } => StepFlag::BarcodeMismatch { scanned: scanned.clone(), expected: expected.clone() },
                        sop::Flag::ConsentRefused => StepFlag::ConsentRefused,
                        sop::Flag::ObservationShort { seconds, min_seconds } => StepFlag::ObservationShort { seconds: *seconds, min_seconds: *min_seconds },
                    })
                    .collect(),
                current: st.current.and_then(|i| v.answers.get(i)).map(Into::into),
                answer_count: st.answers as u32,
            })
            .collect();
        Self {
            template_id: v.pinned.id,
            template_version: v.pinned.version,
            template_sha256: v.pinned.sha256,
            title: (&v.template.title).into(),
            steps,
            open,
            blockers: v.evaluation.blockers.iter().map(Into::into).collect(),
        }
    }
}

/// The SOP checklist of an order (seed 003): templates, answers, gates.
#[derive(uniffi::Object)]
pub struct ChecklistApi {
    pub(crate) device: crate::onsite::Handle,
}

#[uniffi::export]
impl ChecklistApi {
    /// The latest version of every checklist template on this device.
    pub fn templates(&self) -> Result<Vec<TemplateInfo>, ApiError> {
        Ok(self.device.get()?.templates().iter().map(|t| t.as_ref().into()).collect())
    }

    /// Publishes a template version (TOML) to this device; running orders keep theirs.
    pub fn publish_template(&self, file_name: String, toml: String) -> Result<TemplateInfo, ApiError> {
        Ok(self.device.get()?.publish_template(&file_name, &toml)?.as_ref().into())
    }

    /// Starts the order's checklist on the latest version of `template_id`.
    pub fn start(&self, order_id: String, template_id: String) -> Result<ChecklistView, ApiError> {
        Ok(self.device.get()?.start_checklist(&order_id, &template_id)?.into())
    }

    pub fn view(&self, order_id: String) -> Result<ChecklistView, ApiError> {
        Ok(self.device.get()?.checklist(&order_id)?.into())
    }

    /// Records an answer; a correction is a new answer (history keeps the old ones).
    pub fn answer(&self, order_id: String, step_id: String, answer: StepAnswer) -> Result<ChecklistView, ApiError> {
        Ok(self.device.get()?.answer(&order_id, &step_id, answer.try_into()?)?.into())
    }

    pub fn mark_not_applicable(&self, order_id: String, step_id: String, reason: String) -> Result<ChecklistView, ApiError> {
        Ok(self.device.get()?.mark_not_applicable(&order_id, &step_id, &reason)?.into())
    }

    /// Every answer given to a step, oldest first.
    pub fn history(&self, order_id: String, step_id: String) -> Result<Vec<AnswerRecord>, ApiError> {
        Ok(self.device.get()?.step_history(&order_id, &step_id)?.iter().map(Into::into).collect())
    }

    /// Why the order cannot be completed yet (empty when it can).
    pub fn blockers(&self, order_id: String) -> Result<Vec<Blocker>, ApiError> {
        Ok(self.device.get()?.blockers(&order_id)?.iter().map(Into::into).collect())
    }
}
