//! Gate evaluation: from a template, the order's fields and its answers, the state of every
//! step, what is open, and what blocks completion. Pure and deterministic: two replicas with
//! the same answers (in any list order) evaluate to the same result.

use serde::Serialize;

use super::template::{Condition, Step, StepKind, Template, Text};
use super::Error;
use crate::order::checklist::{Answer, AnswerRecord, Checklist};
use crate::order::{Status, WorkOrder};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    /// Waiting for these steps (dependencies, or steps a condition looks at).
    Locked {
        waiting_for: Vec<String>,
    },
    Open,
    Done,
    NotApplicable {
        reason: NaReason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum NaReason {
    /// The step's condition is false for this order.
    Condition,
    /// The engineer marked it, with this reason (only where the template allows).
    Marked { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum Flag {
    OutOfRange { value: f64, min: Option<f64>, max: Option<f64> },
    BarcodeMismatch { scanned: String, expected: Vec<String> },
    ConsentRefused,
    ObservationShort { seconds: i64, min_seconds: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStatus {
    pub step: String,
    pub state: StepState,
    pub flags: Vec<Flag>,
    /// Index into `checklist.answers` of the current answer.
    pub current: Option<usize>,
    /// Number of answers recorded for the step (corrections included).
    pub answers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    pub step: String,
    pub label: Text,
    pub reason: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// In template order.
    pub steps: Vec<StepStatus>,
    pub blockers: Vec<Blocker>,
}

impl Evaluation {
    pub fn status(&self, template: &Template, step: &str) -> Option<&StepStatus> {
        template.index.get(step).map(|&i| &self.steps[i])
    }

    pub fn open(&self) -> Vec<&str> {
        self.steps.iter().filter(|s| s.state == StepState::Open).map(|s| s.step.as_str()).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tri {
    True,
    False,
    Unknown,
}

/// The current answer per step: latest by (time, device, position in the list).
fn current_answers(template: &Template, answers: &[AnswerRecord]) -> (Vec<Option<usize>>, Vec<usize>) {
    let mut current: Vec<Option<usize>> = vec![None; template.steps.len()];
    let mut counts = vec![0usize; template.steps.len()];
    for (i, a) in answers.iter().enumerate() {
        let Some(&s) = template.index.get(&a.step) else { continue };
        // An answer of the wrong kind (e.g. merged from a device on another template
        // version) is kept in history but never counts.
        if let Some(kind) = a.value.kind() {
            if kind != template.steps[s].kind.name() {
                continue;
            }
        } else if !template.steps[s].na_allowed {
            continue;
        }
        counts[s] += 1;
        let better = match current[s] {
            None => true,
            Some(j) => {
                let b = &answers[j];
                (a.at, a.device.as_str(), i) > (b.at, b.device.as_str(), j)
            }
        };
        if better {
            current[s] = Some(i);
        }
    }
    (current, counts)
}

/// What a barcode step accepts. `parts` is the current answer of its `expected_from_step`.
fn expected_values(kind: &StepKind, order: &WorkOrder, parts: Option<&Answer>) -> Vec<String> {
    let StepKind::Barcode { expected, expected_field, .. } = kind else { return Vec::new() };
    let mut v = expected.clone();
    if expected_field.as_deref() == Some("equipment.serial") {
        v.push(order.equipment.serial.clone());
    }
    if let Some(Answer::Parts { parts }) = parts {
        for p in parts {
            v.push(p.part_number.clone());
            v.push(p.serial.clone());
        }
    }
    v
}

fn normalize_code(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

/// Flags of an answer, and whether it satisfies the step.
fn judge(step: &Step, answer: &Answer, order: &WorkOrder, parts: Option<&Answer>) -> (bool, Vec<Flag>) {
    match (&step.kind, answer) {
        (StepKind::Measurement { min, max, .. }, Answer::Measurement { value }) => {
            let out = min.is_some_and(|m| *value < m) || max.is_some_and(|m| *value > m);
            (true, if out { vec![Flag::OutOfRange { value: *value, min: *min, max: *max }] } else { vec![] })
        }
        (StepKind::Barcode { .. }, Answer::Barcode { scanned }) => {
            let expected = expected_values(&step.kind, order, parts);
            if expected.iter().any(|e| normalize_code(e) == normalize_code(scanned)) {
                (true, vec![])
            } else {
                (false, vec![Flag::BarcodeMismatch { scanned: scanned.clone(), expected }])
            }
        }
        (StepKind::Timer { min_seconds }, Answer::Observation { started, stopped, reproduced }) => {
            let seconds = (stopped.0 - started.0) / 1000;
            if *reproduced || seconds >= i64::from(*min_seconds) {
                (true, vec![])
            } else {
                (false, vec![Flag::ObservationShort { seconds, min_seconds: *min_seconds }])
            }
        }
        (StepKind::Consent { .. }, Answer::Consent { accepted, .. }) => (true, if *accepted { vec![] } else { vec![Flag::ConsentRefused] }),
        _ => (true, vec![]),
    }
}

fn step_is(step: &Step, answer: &Answer, is: &str, order: &WorkOrder, parts: Option<&Answer>) -> bool {
    match answer {
        Answer::Choice { selected } => selected.iter().any(|s| s == is),
        Answer::Consent { accepted, .. } => (is == "accepted") == *accepted,
        Answer::Measurement { .. } => {
            let (_, flags) = judge(step, answer, order, parts);
            (is == "out_of_range") != flags.is_empty()
        }
        Answer::Barcode { .. } => {
            let (ok, _) = judge(step, answer, order, parts);
            (is == "match") == ok
        }
        Answer::Observation { reproduced, .. } => (is == "reproduced") == *reproduced,
        _ => is == "answered",
    }
}

fn field_value(order: &WorkOrder, field: &str) -> Option<String> {
    Some(match field {
        "equipment.warranty" => order.equipment.warranty.as_str().to_string(),
        "equipment.category" => order.equipment.category.clone(),
        "equipment.brand" => order.equipment.brand.clone(),
        "priority" => order.priority.as_str().to_string(),
        "site.in_service_area" => order.site.in_service_area.to_string(),
        "fault.channel" => order.fault.channel.as_str().to_string(),
        _ => return None,
    })
}

struct Ctx<'a> {
    template: &'a Template,
    order: &'a WorkOrder,
    answers: &'a [AnswerRecord],
    current: &'a [Option<usize>],
    states: &'a [Option<StepState>],
}

impl Ctx<'_> {
    fn parts_for(&self, i: usize) -> Option<&Answer> {
        parts_source(self.template, self.answers, self.current, i)
    }

    fn eval(&self, c: &Condition, unknown_steps: &mut Vec<String>) -> Tri {
        match c {
            Condition::Field { field, is } => match field_value(self.order, field) {
                Some(v) if &v == is => Tri::True,
                _ => Tri::False,
            },
            Condition::Step { step, is } => {
                let Some(&i) = self.template.index.get(step) else { return Tri::False };
                match &self.states[i] {
                    Some(StepState::NotApplicable { .. }) => Tri::False,
                    Some(StepState::Done) => match self.current[i] {
                        Some(a) if step_is(&self.template.steps[i], &self.answers[a].value, is, self.order, self.parts_for(i)) => Tri::True,
                        _ => Tri::False,
                    },
                    _ => {
                        unknown_steps.push(step.clone());
                        Tri::Unknown
                    }
                }
            }
            Condition::Not { not } => match self.eval(not, unknown_steps) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Unknown => Tri::Unknown,
            },
            Condition::All { all } => {
                let r: Vec<Tri> = all.iter().map(|c| self.eval(c, unknown_steps)).collect();
                if r.contains(&Tri::False) {
                    Tri::False
                } else if r.contains(&Tri::Unknown) {
                    Tri::Unknown
                } else {
                    Tri::True
                }
            }
            Condition::Any { any } => {
                let r: Vec<Tri> = any.iter().map(|c| self.eval(c, unknown_steps)).collect();
                if r.contains(&Tri::True) {
                    Tri::True
                } else if r.contains(&Tri::Unknown) {
                    Tri::Unknown
                } else {
                    Tri::False
                }
            }
        }
    }
}

/// The current answer of the parts step a barcode step takes its expected values from.
fn parts_source<'a>(template: &Template, answers: &'a [AnswerRecord], current: &[Option<usize>], i: usize) -> Option<&'a Answer> {
    let StepKind::Barcode { expected_from_step: Some(from), .. } = &template.steps[i].kind else { return None };
    let j = *template.index.get(from)?;
    current[j].map(|a| &answers[a].value)
}

/// Evaluates every step of `template` for `order`'s checklist.
pub fn evaluate(template: &Template, order: &WorkOrder, checklist: &Checklist) -> Evaluation {
    let answers = &checklist.answers;
    let (current, counts) = current_answers(template, answers);
    let n = template.steps.len();
    let mut states: Vec<Option<StepState>> = vec![None; n];
    let mut flags: Vec<Vec<Flag>> = vec![Vec::new(); n];
    for &i in &template.order {
        let step = &template.steps[i];
        let mut waiting: Vec<String> = step
            .after
            .iter()
            .filter(|d| {
                let j = template.index[d.as_str()];
                !matches!(states[j], Some(StepState::Done) | Some(StepState::NotApplicable { .. }))
            })
            .cloned()
            .collect();
        let cond = match &step.when {
            None => Tri::True,
            Some(c) => {
                let ctx = Ctx { template, order, answers, current: &current, states: &states };
                let mut unknown = Vec::new();
                let t = ctx.eval(c, &mut unknown);
                for u in unknown {
                    if !waiting.contains(&u) {
                        waiting.push(u);
                    }
                }
                t
            }
        };
        let answer = current[i].map(|a| &answers[a].value);
        let state = if let Some(Answer::NotApplicable { reason }) = answer {
            StepState::NotApplicable { reason: NaReason::Marked { reason: reason.clone() } }
        } else if cond == Tri::False {
            StepState::NotApplicable { reason: NaReason::Condition }
        } else if !waiting.is_empty() {
            StepState::Locked { waiting_for: waiting }
        } else if let Some(a) = answer {
            let (ok, f) = judge(step, a, order, parts_source(template, answers, &current, i));
            flags[i] = f;
            if ok {
                StepState::Done
            } else {
                StepState::Open
            }
        } else {
            StepState::Open
        };
        states[i] = Some(state);
    }
    let steps: Vec<StepStatus> = template
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepStatus {
            step: s.id.clone(),
            state: states[i].take().unwrap_or(StepState::Open),
            flags: std::mem::take(&mut flags[i]),
            current: current[i],
            answers: counts[i],
        })
        .collect();
    let blockers = template
        .steps
        .iter()
        .zip(&steps)
        .filter(|(step, st)| step.required && !matches!(st.state, StepState::Done | StepState::NotApplicable { .. }))
        .map(|(step, st)| Blocker { step: step.id.clone(), label: step.label.clone(), reason: blocker_reason(template, step, st) })
        .collect();
    Evaluation { steps, blockers }
}

fn labels(template: &Template, ids: &[String]) -> (String, String) {
    let zh: Vec<&str> = ids.iter().filter_map(|i| template.step(i)).map(|s| s.label.zh.as_str()).collect();
    let en: Vec<&str> = ids.iter().filter_map(|i| template.step(i)).map(|s| s.label.en.as_str()).collect();
    (zh.join("」「"), en.join("\", \""))
}

fn blocker_reason(template: &Template, step: &Step, st: &StepStatus) -> Text {
    let t = |zh: String, en: String| Text { zh, en };
    if let StepState::Locked { waiting_for } = &st.state {
        let (zh, en) = labels(template, waiting_for);
        return t(format!("需先完成「{zh}」"), format!("first finish \"{en}\""));
    }
    for f in &st.flags {
        match f {
            Flag::BarcodeMismatch { scanned, .. } => {
                return t(
                    format!("扫描到的条码 {scanned} 与预期不符,请重新核对"),
                    format!("scanned {scanned} does not match what was expected; check it again"),
                )
            }
            Flag::ObservationShort { seconds, min_seconds } => {
                return t(
                    format!("故障未重现,需观察至少 {} 分钟(已观察 {} 分钟)", min_seconds / 60, seconds / 60),
                    format!("the fault did not reproduce: observe at least {} minutes ({} so far)", min_seconds / 60, seconds / 60),
                )
            }
            _ => {}
        }
    }
    match &step.kind {
        StepKind::Confirmation => t("尚未确认".into(), "not confirmed yet".into()),
        StepKind::Photo { min, max } => t(format!("需拍照 {min}-{max} 张"), format!("take {min} to {max} photos")),
        StepKind::Measurement { unit, .. } => t(format!("需记录测量值({unit})"), format!("record the measurement ({unit})")),
        StepKind::Note => t("需填写说明".into(), "write the note".into()),
        StepKind::Choice { .. } => t("需选择一项".into(), "choose an option".into()),
        StepKind::Barcode { .. } => t("需扫描条码".into(), "scan the barcode".into()),
        StepKind::Parts => t("需登记备件(无则登记空清单)".into(), "record the parts (an empty list if none)".into()),
        StepKind::Timer { min_seconds } => {
            t(format!("需重现故障或观察 {} 分钟", min_seconds / 60), format!("reproduce the fault or observe for {} minutes", min_seconds / 60))
        }
        StepKind::Consent { .. } => t("需客户签字同意或拒绝".into(), "the customer must accept or refuse, and sign".into()),
    }
}

/// Checks an answer against the template and the current state before it is recorded.
pub fn check_answer(template: &Template, order: &WorkOrder, step_id: &str, answer: &Answer) -> Result<(), Error> {
    let step = template.step(step_id).ok_or_else(|| Error::UnknownStep { step: step_id.to_string() })?;
    if matches!(order.status, Status::Completed | Status::Cancelled | Status::CarriedToWorkshop) {
        return Err(Error::Closed { step: step_id.to_string(), reason: format!("the order is {}", order.status) });
    }
    let eval = evaluate(template, order, &order.checklist);
    let status = &eval.steps[template.index[step_id]];
    let invalid = |field: &str, reason: String| Error::Invalid { step: step_id.to_string(), field: field.to_string(), reason };
    if let Answer::NotApplicable { reason } = answer {
        if !step.na_allowed {
            return Err(Error::NaNotAllowed { step: step_id.to_string() });
        }
        if reason.trim().is_empty() || reason.chars().count() > 1000 {
            return Err(invalid("reason", "give a reason (1 to 1000 characters)".into()));
        }
    }
    match &status.state {
        StepState::Locked { waiting_for } => return Err(Error::OutOfOrder { step: step_id.to_string(), waiting_for: waiting_for.clone() }),
        StepState::NotApplicable { reason: NaReason::Condition } => return Err(Error::NotApplicable { step: step_id.to_string() }),
        _ => {}
    }
    if let (StepKind::Consent { .. }, Some(a)) = (&step.kind, status.current) {
        if matches!(order.checklist.answers[a].value, Answer::Consent { .. }) {
            return Err(Error::Closed { step: step_id.to_string(), reason: "a signed consent is final".into() });
        }
    }
    let Some(kind) = answer.kind() else { return Ok(()) };
    if kind != step.kind.name() {
        return Err(Error::WrongType { step: step_id.to_string(), expected: step.kind.name().to_string(), got: kind.to_string() });
    }
    // What any answer must satisfy, here as on the server (a measurement is finite).
    answer.check().map_err(|e| match e {
        crate::order::Error::Invalid { field, reason } => invalid(&field, reason),
        other => invalid("value", other.to_string()),
    })?;
    match (&step.kind, answer) {
        (StepKind::Photo { min, max }, Answer::Photos { photos }) => {
            let n = photos.len() as u32;
            if n < (*min).max(1) || n > *max {
                return Err(invalid("photos", format!("{} to {max} photos, got {n}", (*min).max(1))));
            }
            for p in photos {
                if !crate::hash::is_sha256_hex(&p.sha256) {
                    return Err(invalid("photos.sha256", format!("`{}` is not a SHA-256 in lowercase hex", p.sha256)));
                }
                if p.label.chars().count() > 200 {
                    return Err(invalid("photos.label", "at most 200 characters".into()));
                }
            }
            let mut hashes: Vec<&str> = photos.iter().map(|p| p.sha256.as_str()).collect();
            hashes.sort_unstable();
            if hashes.windows(2).any(|w| w[0] == w[1]) {
                return Err(invalid("photos", "the same photo twice".into()));
            }
        }
        (StepKind::Note, Answer::Note { text }) if text.trim().is_empty() || text.chars().count() > 4000 => {
            return Err(invalid("text", "1 to 4000 characters".into()));
        }
        (StepKind::Choice { options, multiple }, Answer::Choice { selected }) => {
            if selected.is_empty() || (!multiple && selected.len() != 1) {
                return Err(invalid("selected", if *multiple { "choose at least one".into() } else { "choose exactly one".into() }));
            }
            for s in selected {
                if !options.iter().any(|o| &o.id == s) {
                    return Err(invalid("selected", format!("unknown option `{s}`")));
                }
            }
            let mut sorted = selected.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != selected.len() {
                return Err(invalid("selected", "an option twice".into()));
            }
        }
        (StepKind::Barcode { .. }, Answer::Barcode { scanned }) if scanned.trim().is_empty() || scanned.len() > 128 => {
            return Err(invalid("scanned", "1 to 128 characters".into()));
        }
        (StepKind::Parts, Answer::Parts { parts }) => {
            for p in parts {
                if p.part_number.trim().is_empty() || p.serial.trim().is_empty() {
                    return Err(invalid("parts", "each part needs a part number and a serial".into()));
                }
                if p.quantity == 0 || p.quantity > 1000 {
                    return Err(invalid("parts.quantity", "1 to 1000".into()));
                }
            }
        }
        (StepKind::Timer { .. }, Answer::Observation { started, stopped, .. }) if (stopped < started || stopped.0 - started.0 > 24 * 3_600_000) => {
            return Err(invalid("stopped", "must be after the start and within 24 hours".into()));
        }
        (StepKind::Consent { risk_sha256, .. }, Answer::Consent { accepted, risk_sha256: shown, signer, strokes, strokes_sha256 }) => {
            if shown != risk_sha256 {
                return Err(invalid("risk_sha256", "the risk text shown is not the template's".into()));
            }
            if signer.trim().is_empty() {
                return Err(invalid("signer", "the customer's name is required".into()));
            }
            let decoded = crate::signature::decode(strokes).map_err(|e| invalid("strokes", e.to_string()))?;
            if *accepted && decoded.is_empty() {
                return Err(invalid("strokes", "an accepted consent needs the customer's signature".into()));
            }
            if *strokes_sha256 != crate::signature::strokes_sha256(strokes) {
                return Err(invalid("strokes_sha256", "does not match the strokes".into()));
            }
        }
        _ => {}
    }
    Ok(())
}
