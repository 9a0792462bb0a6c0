//! Checklist templates: data files (TOML), versioned, validated on load with errors that name
//! the file, the step and the field.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Error;
use crate::hash::sha256_hex;

/// A label in both languages the app shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    pub id: String,
    pub label: Text,
}

/// A condition on earlier answers or on order fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    Step { step: String, is: String },
    Field { field: String, is: String },
    Not { not: Box<Condition> },
    All { all: Vec<Condition> },
    Any { any: Vec<Condition> },
}

/// Order fields a condition may test, with the values each can take (`None`: free text).
pub const CONDITION_FIELDS: &[(&str, Option<&[&str]>)] = &[
    ("equipment.warranty", Some(&["in_warranty", "out_of_warranty", "unknown"])),
    ("equipment.category", None),
    ("equipment.brand", None),
    ("priority", Some(&["urgent", "normal", "low"])),
    ("site.in_service_area", Some(&["true", "false"])),
    ("fault.channel", Some(&["phone", "web", "app", "email", "walk_in", "other"])),
];

/// Order fields a barcode step may take its expected value from.
pub const EXPECTED_FIELDS: &[&str] = &["equipment.serial"];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    /// Expected values: listed, from an order field, and/or the part numbers and serials
    /// recorded in a parts step (a part fitted must be one that was borrowed).
    Barcode {
        expected: Vec<String>,
        expected_field: Option<String>,
        expected_from_step: Option<String>,
    },
    Parts,
    Timer {
        min_seconds: u32,
    },
    Consent {
        risk: Text,
        risk_sha256: String,
    },
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Confirmation => "confirmation",
            StepKind::Photo { .. } => "photo",
            StepKind::Measurement { .. } => "measurement",
            StepKind::Note => "note",
            StepKind::Choice { .. } => "choice",
            StepKind::Barcode { .. } => "barcode",
            StepKind::Parts => "parts",
            StepKind::Timer { .. } => "timer",
            StepKind::Consent { .. } => "consent",
        }
    }

    /// The words a `{ step = ..., is = ... }` condition may use for a step of this kind.
    fn condition_values(&self) -> Vec<String> {
        match self {
            StepKind::Choice { options, .. } => options.iter().map(|o| o.id.clone()).collect(),
            StepKind::Consent { .. } => vec!["accepted".into(), "refused".into()],
            StepKind::Measurement { .. } => vec!["in_range".into(), "out_of_range".into()],
            StepKind::Barcode { .. } => vec!["match".into(), "mismatch".into()],
            StepKind::Timer { .. } => vec!["reproduced".into(), "not_reproduced".into()],
            StepKind::Confirmation | StepKind::Note | StepKind::Parts | StepKind::Photo { .. } => vec!["answered".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: String,
    pub label: Text,
    pub help: Option<Text>,
    pub kind: StepKind,
    pub required: bool,
    pub after: Vec<String>,
    pub when: Option<Condition>,
    pub na_allowed: bool,
    /// For a parts step: what its answer records in the spare-part ledger (docs/adr/0011).
    pub ledger: Option<LedgerRole>,
}

/// The ledger movement a parts step's answer records, one per listed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerRole {
    /// Parts taken from the clerk for this order.
    Borrow,
    /// Parts fitted; `returned_serial` is the faulty part taken out.
    Install,
    /// Parts handed back to the clerk (unused good ones and faulty ones).
    Return,
}

impl LedgerRole {
    pub fn kind(self) -> crate::parts::Kind {
        match self {
            LedgerRole::Borrow => crate::parts::Kind::Borrow,
            LedgerRole::Install => crate::parts::Kind::Install,
            LedgerRole::Return => crate::parts::Kind::Return,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub id: String,
    pub version: u32,
    pub title: Text,
    pub source: Option<String>,
    pub steps: Vec<Step>,
    /// SHA-256 (hex) of the template file as published: pinned with the order.
    pub sha256: String,
    /// Step indices in an order where every step comes after what it depends on.
    #[serde(skip)]
    pub(crate) order: Vec<usize>,
    #[serde(skip)]
    pub(crate) index: HashMap<String, usize>,
}

impl Template {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.index.get(id).map(|&i| &self.steps[i])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    id: String,
    version: u32,
    title: Text,
    #[serde(default)]
    source: Option<String>,
    steps: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    kind: String,
    label: Text,
    #[serde(default)]
    help: Option<Text>,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    when: Option<toml::Value>,
    #[serde(default)]
    na_allowed: bool,
    #[serde(default)]
    ledger: Option<String>,
    // Kind parameters; which apply depends on `kind`.
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    options: Option<Vec<ChoiceOption>>,
    #[serde(default)]
    multiple: Option<bool>,
    #[serde(default)]
    expected: Option<Vec<String>>,
    #[serde(default)]
    expected_field: Option<String>,
    #[serde(default)]
    expected_from_step: Option<String>,
    #[serde(default)]
    min_seconds: Option<u32>,
    #[serde(default)]
    risk: Option<Text>,
}

/// The field an error is about: the deserializer's path, or the field named in a "missing
/// field `x`" / "unknown field `x`" message when the path stops at the parent.
fn field_name(path: &str, reason: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_string();
    }
    reason
        .split('`')
        .nth(1)
        .filter(|_| reason.contains("missing field") || reason.contains("unknown field"))
        .map(str::to_string)
        .unwrap_or_else(|| "-".to_string())
}

fn yes() -> bool {
    true
}

/// The hash a consent answer must carry: SHA-256 of the risk text exactly as shown,
/// `zh` + "\n" + `en`.
pub fn risk_hash(risk: &Text) -> String {
    sha256_hex(format!("{}\n{}", risk.zh, risk.en).as_bytes())
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Template {
    /// Parses and validates a template. `file` names the source in errors.
    pub fn parse(file: &str, source: &str) -> Result<Template, Error> {
        let err = |step: Option<&str>, field: &str, reason: String| Error::Template {
            file: file.to_string(),
            step: step.map(str::to_string),
            field: field.to_string(),
            reason,
        };
        let de = toml::Deserializer::new(source);
        let raw: TemplateFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let reason = e.into_inner().to_string().trim().to_string();
            err(None, &field_name(&path, &reason), reason)
        })?;
        if !ident_ok(&raw.id) {
            return Err(err(None, "id", "use lowercase letters, digits, - and _".into()));
        }
        if raw.version == 0 {
            return Err(err(None, "version", "versions start at 1".into()));
        }
        if raw.steps.is_empty() {
            return Err(err(None, "steps", "a template needs at least one step".into()));
        }
        let mut steps = Vec::with_capacity(raw.steps.len());
        let mut index = HashMap::new();
        for (i, value) in raw.steps.into_iter().enumerate() {
            let id_hint = value.get("id").and_then(|v| v.as_str()).map(str::to_string).unwrap_or_else(|| format!("#{}", i + 1));
            let s: StepFile = serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let reason = e.into_inner().to_string().trim().to_string();
                err(Some(&id_hint), &field_name(&path, &reason), reason)
            })?;
            let step = build_step(s).map_err(|(field, reason)| err(Some(&id_hint), &field, reason))?;
            if index.insert(step.id.clone(), steps.len()).is_some() {
                return Err(err(Some(&step.id), "id", "duplicate step id".into()));
            }
            steps.push(step);
        }
        // References: `after` and conditions name existing steps and valid values.
        for step in &steps {
            for dep in &step.after {
                if !index.contains_key(dep) {
                    return Err(err(Some(&step.id), "after", format!("refers to a missing step `{dep}`")));
                }
                if dep == &step.id {
                    return Err(err(Some(&step.id), "after", "a step cannot come after itself".into()));
                }
            }
            if let Some(c) = &step.when {
                check_condition(c, &steps, &index).map_err(|reason| err(Some(&step.id), "when", reason))?;
            }
            if let StepKind::Barcode { expected_from_step: Some(from), .. } = &step.kind {
                match index.get(from) {
                    None => return Err(err(Some(&step.id), "expected_from_step", format!("refers to a missing step `{from}`"))),
                    Some(&j) if steps[j].kind != StepKind::Parts => {
                        return Err(err(Some(&step.id), "expected_from_step", format!("`{from}` is not a parts step")))
                    }
                    Some(_) => {}
                }
            }
        }
        let order =
            topological_order(&steps, &index).map_err(|cycle| err(Some(&cycle[0]), "after/when", format!("dependency cycle: {}", cycle.join(" -> "))))?;
        Ok(Template { id: raw.id, version: raw.version, title: raw.title, source: raw.source, steps, sha256: sha256_hex(source.as_bytes()), order, index })
    }
}

fn build_step(s: StepFile) -> Result<Step, (String, String)> {
    let bad = |field: &str, reason: &str| (field.to_string(), reason.to_string());
    if !ident_ok(&s.id) {
        return Err(bad("id", "use lowercase letters, digits, - and _"));
    }
    // Parameters that do not apply to the kind are refused, so a typo never goes unnoticed.
    let given: Vec<&str> = [
        ("min", s.min.is_some()),
        ("max", s.max.is_some()),
        ("unit", s.unit.is_some()),
        ("options", s.options.is_some()),
        ("multiple", s.multiple.is_some()),
        ("expected", s.expected.is_some()),
        ("expected_field", s.expected_field.is_some()),
        ("expected_from_step", s.expected_from_step.is_some()),
        ("min_seconds", s.min_seconds.is_some()),
        ("risk", s.risk.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let allowed: &[&str] = match s.kind.as_str() {
        "confirmation" | "note" | "parts" => &[],
        "photo" => &["min", "max"],
        "measurement" => &["min", "max", "unit"],
        "choice" => &["options", "multiple"],
        "barcode" => &["expected", "expected_field", "expected_from_step"],
        "timer" => &["min_seconds"],
        "consent" => &["risk"],
        other => {
            return Err(bad(
                "kind",
                &format!("unknown step kind `{other}` (known: confirmation, photo, measurement, note, choice, barcode, parts, timer, consent)"),
            ))
        }
    };
    if let Some(p) = given.iter().find(|p| !allowed.contains(p)) {
        return Err(bad(p, &format!("does not apply to a {} step", s.kind)));
    }
    let kind = match s.kind.as_str() {
        "confirmation" => StepKind::Confirmation,
        "note" => StepKind::Note,
        "parts" => StepKind::Parts,
        "photo" => {
            let as_count = |v: Option<f64>, field: &str, default: u32| -> Result<u32, (String, String)> {
                match v {
                    None => Ok(default),
                    Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= 100.0 => Ok(x as u32),
                    Some(_) => Err(bad(field, "a photo count is a whole number 0..100")),
                }
            };
            let min = as_count(s.min, "min", 1)?;
            let max = as_count(s.max, "max", min.max(1))?;
            if max < min.max(1) {
                return Err(bad("max", "must be at least `min` and at least 1"));
            }
            StepKind::Photo { min, max }
        }
        "measurement" => {
            let unit = s.unit.filter(|u| !u.trim().is_empty()).ok_or_else(|| bad("unit", "a measurement needs a unit"))?;
            if let (Some(a), Some(b)) = (s.min, s.max) {
                if a > b {
                    return Err(bad("max", "the allowed range ends before it starts"));
                }
            }
            StepKind::Measurement { unit, min: s.min, max: s.max }
        }
        "choice" => {
            let options = s.options.unwrap_or_default();
            if options.len() < 2 {
                return Err(bad("options", "a choice needs at least two options"));
            }
            let mut seen = std::collections::HashSet::new();
            for o in &options {
                if !ident_ok(&o.id) {
                    return Err(bad("options", &format!("option id `{}`: use lowercase letters, digits, - and _", o.id)));
                }
                if !seen.insert(o.id.as_str()) {
                    return Err(bad("options", &format!("duplicate option `{}`", o.id)));
                }
            }
            StepKind::Choice { options, multiple: s.multiple.unwrap_or(false) }
        }
        "barcode" => {
            let expected = s.expected.unwrap_or_default();
            if let Some(f) = &s.expected_field {
                if !EXPECTED_FIELDS.contains(&f.as_str()) {
                    return Err(bad("expected_field", &format!("unknown order field `{f}` (known: {})", EXPECTED_FIELDS.join(", "))));
                }
            }
            if expected.is_empty() && s.expected_field.is_none() && s.expected_from_step.is_none() {
                return Err(bad("expected", "a barcode step needs `expected`, `expected_field` or `expected_from_step`"));
            }
            StepKind::Barcode { expected, expected_field: s.expected_field, expected_from_step: s.expected_from_step }
        }
        "timer" => StepKind::Timer { min_seconds: s.min_seconds.ok_or_else(|| bad("min_seconds", "a timer needs a minimum duration"))? },
        "consent" => {
            let risk = s.risk.ok_or_else(|| bad("risk", "a consent step needs the exact risk text shown to the customer"))?;
            if risk.zh.trim().is_empty() || risk.en.trim().is_empty() {
                return Err(bad("risk", "the risk text must not be empty"));
            }
            let risk_sha256 = risk_hash(&risk);
            StepKind::Consent { risk, risk_sha256 }
        }
        _ => return Err(bad("kind", "unknown step kind")),
    };
    let when = match s.when {
        None => None,
        Some(v) => Some(Condition::deserialize(v).map_err(|_| bad("when", "expected {step, is}, {field, is}, {not = ...}, {all = [...]} or {any = [...]}"))?),
    };
    let ledger = match (s.ledger.as_deref(), &kind) {
        (None, _) => None,
        (Some(_), k) if *k != StepKind::Parts => return Err(bad("ledger", "only a parts step records ledger movements")),
        (Some("borrow"), _) => Some(LedgerRole::Borrow),
        (Some("install"), _) => Some(LedgerRole::Install),
        (Some("return"), _) => Some(LedgerRole::Return),
        (Some(_), _) => return Err(bad("ledger", "one of borrow, install, return")),
    };
    Ok(Step { id: s.id, label: s.label, help: s.help, kind, required: s.required, after: s.after, when, na_allowed: s.na_allowed, ledger })
}

fn check_condition(c: &Condition, steps: &[Step], index: &HashMap<String, usize>) -> Result<(), String> {
    match c {
        Condition::Step { step, is } => {
            let Some(&i) = index.get(step) else { return Err(format!("refers to a missing step `{step}`")) };
            let values = steps[i].kind.condition_values();
            if !values.contains(is) {
                return Err(format!("step `{step}` ({}) is never `{is}` (it can be: {})", steps[i].kind.name(), values.join(", ")));
            }
            Ok(())
        }
        Condition::Field { field, is } => match CONDITION_FIELDS.iter().find(|(f, _)| f == field) {
            None => Err(format!("unknown order field `{field}` (known: {})", CONDITION_FIELDS.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", "))),
            Some((_, Some(values))) if !values.contains(&is.as_str()) => Err(format!("`{field}` is never `{is}` (it can be: {})", values.join(", "))),
            Some(_) => Ok(()),
        },
        Condition::Not { not } => check_condition(not, steps, index),
        Condition::All { all: list } | Condition::Any { any: list } => {
            if list.is_empty() {
                return Err("an empty all/any list".into());
            }
            list.iter().try_for_each(|c| check_condition(c, steps, index))
        }
    }
}

pub(crate) fn condition_steps<'a>(c: &'a Condition, out: &mut Vec<&'a str>) {
    match c {
        Condition::Step { step, .. } => out.push(step),
        Condition::Field { .. } => {}
        Condition::Not { not } => condition_steps(not, out),
        Condition::All { all: list } | Condition::Any { any: list } => list.iter().for_each(|c| condition_steps(c, out)),
    }
}

/// Kahn's algorithm over `after` and condition references, stable in file order. On a cycle,
/// returns the steps on it.
fn topological_order(steps: &[Step], index: &HashMap<String, usize>) -> Result<Vec<usize>, Vec<String>> {
    let n = steps.len();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in steps.iter().enumerate() {
        let mut refs: Vec<&str> = s.after.iter().map(String::as_str).collect();
        if let Some(c) = &s.when {
            condition_steps(c, &mut refs);
        }
        if let StepKind::Barcode { expected_from_step: Some(from), .. } = &s.kind {
            refs.push(from);
        }
        for r in refs {
            if let Some(&j) = index.get(r) {
                if !deps[i].contains(&j) {
                    deps[i].push(j);
                }
            }
        }
    }
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &k in &dependents[i] {
            remaining[k] -= 1;
            if remaining[k] == 0 {
                ready.insert(k);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk dependencies from an unfinished step until a step repeats: that loop is the cycle.
    let start = (0..n).find(|&i| remaining[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut cur = start;
    while let Some(&next) = deps[cur].iter().find(|&&j| remaining[j] > 0) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|&i| steps[i].id.clone()).collect();
            cycle.push(steps[next].id.clone());
            return Err(cycle);
        }
        path.push(next);
        cur = next;
    }
    Err(vec![steps[start].id.clone()])
}

/// Built-in templates shipped with the app (labels in Chinese and English).
pub const BUILTIN: &[(&str, &str)] = &[
    ("onsite-repair.toml", include_str!("../../templates/onsite-repair.toml")),
    ("workshop-intake.toml", include_str!("../../templates/workshop-intake.toml")),
    ("os-reinstall.toml", include_str!("../../templates/os-reinstall.toml")),
    ("onsite-repair.v2.toml", include_str!("../../templates/onsite-repair.v2.toml")),
];

/// All known template versions. Publishing a version adds it; nothing is ever replaced, so
/// an order pinned to an older version keeps it.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    templates: BTreeMap<(String, u32), std::sync::Arc<Template>>,
}

impl Registry {
    /// The built-in templates, parsed once per process (opening a store stays cheap).
    pub fn with_builtins() -> Result<Self, Error> {
        static BUILTINS: std::sync::OnceLock<Result<Registry, Error>> = std::sync::OnceLock::new();
        BUILTINS
            .get_or_init(|| {
                let mut r = Registry::default();
                for (file, source) in BUILTIN {
                    r.add(Template::parse(file, source)?)?;
                }
                Ok(r)
            })
            .clone()
    }

    /// Adds a version. The same id+version with different content is refused.
    pub fn add(&mut self, t: Template) -> Result<std::sync::Arc<Template>, Error> {
        let key = (t.id.clone(), t.version);
        if let Some(existing) = self.templates.get(&key) {
            if existing.sha256 != t.sha256 {
                return Err(Error::VersionExists { id: t.id, version: t.version });
            }
            return Ok(existing.clone());
        }
        let t = std::sync::Arc::new(t);
        self.templates.insert(key, t.clone());
        Ok(t)
    }

    pub fn get(&self, id: &str, version: u32) -> Option<std::sync::Arc<Template>> {
        self.templates.get(&(id.to_string(), version)).cloned()
    }

    pub fn latest(&self, id: &str) -> Option<std::sync::Arc<Template>> {
        self.templates.range((id.to_string(), 0)..=(id.to_string(), u32::MAX)).next_back().map(|(_, t)| t.clone())
    }

    /// The latest version of every template.
    pub fn list(&self) -> Vec<std::sync::Arc<Template>> {
        let mut out: Vec<std::sync::Arc<Template>> = Vec::new();
        for ((id, _), t) in &self.templates {
            if out.last().is_some_and(|l| &l.id == id) {
                out.pop();
            }
            out.push(t.clone());
        }
        out
    }
}
