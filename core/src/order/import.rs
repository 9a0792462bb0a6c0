//! The dispatcher's work-order JSON (what a dispatcher console or the sync server sends),
//! validated into a [`WorkOrder`]. Errors name the field by its JSON path.
//!
//! Unknown fields are ignored (a newer console may send more); missing or malformed known
//! fields are refused.

use serde::Deserialize;

use super::lifecycle::Status;
use super::model::*;
use super::Error;

#[derive(Debug, Deserialize)]
pub struct DispatchOrder {
    pub id: String,
    pub provider: DispatchProvider,
    pub customer: DispatchCustomer,
    pub site: DispatchSite,
    pub equipment: DispatchEquipment,
    pub fault: DispatchFault,
    pub priority: Priority,
    #[serde(default)]
    pub appointment: Option<TimeWindow>,
    pub engineer: DispatchEngineer,
}

#[derive(Debug, Deserialize)]
pub struct DispatchProvider {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct DispatchCustomer {
    pub company: String,
    pub contact: String,
    pub phone: String,
}

#[derive(Debug, Deserialize)]
pub struct DispatchSite {
    pub address: String,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    pub in_service_area: bool,
    pub distance_km: f64,
}

#[derive(Debug, Deserialize)]
pub struct DispatchEquipment {
    pub category: String,
    pub brand: String,
    pub model: String,
    pub serial: String,
    pub warranty: WarrantyStatus,
    #[serde(default)]
    pub warranty_ends: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DispatchFault {
    pub description: String,
    pub reported_at: Timestamp,
    pub channel: Channel,
}

#[derive(Debug, Deserialize)]
pub struct DispatchEngineer {
    pub id: String,
    pub name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid { field: field.to_string(), reason: reason.into() }
}

/// Parses one order or an array of orders. All-or-nothing: one bad order refuses the file.
pub fn parse_orders(json: &str, created_at: Timestamp) -> Result<Vec<WorkOrder>, Error> {
    let top: OneOrMany = serde_json::from_str(json).map_err(|e| invalid("$", e.to_string()))?;
    let (values, many) = match top {
        OneOrMany::Many(v) => (v, true),
        OneOrMany::One(v) => (vec![v], false),
    };
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let prefix = if many { format!("[{i}].") } else { String::new() };
        let dto: DispatchOrder = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            invalid(&format!("{prefix}{path}"), e.into_inner().to_string())
        })?;
        let order = dto.validate(created_at).map_err(|e| match e {
            Error::Invalid { field, reason } => Error::Invalid { field: format!("{prefix}{field}"), reason },
            other => other,
        })?;
        out.push(order);
    }
    let mut ids: Vec<&str> = out.iter().map(|o| o.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid("id", format!("order `{}` appears twice in the file", w[0])));
    }
    Ok(out)
}

fn non_empty(field: &str, v: &str, max: usize) -> Result<String, Error> {
    let t = v.trim();
    if t.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(invalid(field, format!("longer than {max} characters")));
    }
    Ok(t.to_string())
}

/// Order ids become file names in bundles and URL path segments: keep them tame.
pub fn validate_order_id(id: &str) -> Result<(), Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > 64 || !id.chars().all(ok_char) || id.starts_with('.') {
        return Err(invalid("id", "1-64 characters of A-Z a-z 0-9 - _ . not starting with '.'"));
    }
    Ok(())
}

impl DispatchOrder {
    pub fn validate(self, created_at: Timestamp) -> Result<WorkOrder, Error> {
        validate_order_id(&self.id)?;
        let phone = non_empty("customer.phone", &self.customer.phone, 32)?;
        if !phone.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')')) {
            return Err(invalid("customer.phone", "only digits, spaces and + - ( )"));
        }
        let location = match (self.site.lat, self.site.lon) {
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(invalid("site.lat", "must be within -90..90"));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(invalid("site.lon", "must be within -180..180"));
                }
                Some(GeoPoint { lat, lon })
            }
            (None, None) => None,
            (Some(_), None) => return Err(invalid("site.lon", "missing while site.lat is given")),
            (None, Some(_)) => return Err(invalid("site.lat", "missing while site.lon is given")),
        };
        if !self.site.distance_km.is_finite() || self.site.distance_km < 0.0 {
            return Err(invalid("site.distance_km", "must be a finite number >= 0"));
        }
        if let Some(d) = &self.equipment.warranty_ends {
            if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                return Err(invalid("equipment.warranty_ends", "must be a date YYYY-MM-DD"));
            }
        }
        if let Some(w) = &self.appointment {
            if w.end <= w.start {
                return Err(invalid("appointment", "end must be after start"));
            }
        }
        Ok(WorkOrder {
            schema: DOC_SCHEMA,
            id: self.id,
            provider: Provider { id: non_empty("provider.id", &self.provider.id, 64)?, name: non_empty("provider.name", &self.provider.name, 200)? },
            customer: Customer {
                company: non_empty("customer.company", &self.customer.company, 200)?,
                contact: non_empty("customer.contact", &self.customer.contact, 100)?,
                phone,
            },
            site: Site {
                address: non_empty("site.address", &self.site.address, 500)?,
                location,
                in_service_area: self.site.in_service_area,
                distance_km: self.site.distance_km,
            },
            equipment: Equipment {
                category: non_empty("equipment.category", &self.equipment.category, 100)?,
                brand: non_empty("equipment.brand", &self.equipment.brand, 100)?,
                model: non_empty("equipment.model", &self.equipment.model, 100)?,
                serial: non_empty("equipment.serial", &self.equipment.serial, 100)?,
                warranty: self.equipment.warranty,
                warranty_ends: self.equipment.warranty_ends,
            },
            fault: FaultReport {
                description: non_empty("fault.description", &self.fault.description, 4000)?,
                reported_at: self.fault.reported_at,
                channel: self.fault.channel,
            },
            priority: self.priority,
            appointment: self.appointment,
            engineer: Engineer { id: non_empty("engineer.id", &self.engineer.id, 64)?, name: non_empty("engineer.name", &self.engineer.name, 100)? },
            status: Status::Assigned,
            transitions: Vec::new(),
            notes: Vec::new(),
            checklist: super::checklist::Checklist::default(),
            receipts: Vec::new(),
            help: Vec::new(),
            help_answers: Vec::new(),
            created_at,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_json(id: &str) -> String {
        format!(
            r#"{{
  "id": "{id}",
  "provider": {{"id": "prov-bj", "name": "北京快修服务站"}},
  "customer": {{"company": "华信会计师事务所", "contact": "王女士", "phone": "+86 10 6552 1234"}},
  "site": {{"address": "北京市朝阳区建国路 88 号 12 层", "lat": 39.9087, "lon": 116.4602, "in_service_area": true, "distance_km": 8.4}},
  "equipment": {{"category": "laptop", "brand": "ThinkPad", "model": "T14 Gen 4", "serial": "PF3XK9Z1", "warranty": "in_warranty", "warranty_ends": "2027-06-30"}},
  "fault": {{"description": "开机黑屏,电源灯亮 / black screen at power-on", "reported_at": "2026-11-23T09:10:00+08:00", "channel": "phone"}},
  "priority": "urgent",
  "engineer": {{"id": "eng-017", "name": "李工"}}
}}"#
        )
    }

    #[test]
    fn parses_a_valid_order() {
        let orders = parse_orders(&sample_json("WO-1"), Timestamp(0)).unwrap();
        assert_eq!(orders.len(), 1);
        let o = &orders[0];
        assert_eq!(o.status, Status::Assigned);
        assert_eq!(o.priority, Priority::Urgent);
        assert_eq!(o.fault.reported_at.to_datetime().to_rfc3339(), "2026-11-23T01:10:00+00:00");
        assert_eq!(o.site.location.unwrap().lat, 39.9087);
    }

    #[test]
    fn malformed_fields_are_named() {
        let bad = sample_json("WO-1").replace("\"lat\": 39.9087", "\"lat\": \"north\"");
        match parse_orders(&bad, Timestamp(0)) {
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(field, "site.lat");
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let bad = sample_json("WO-1").replace("\"priority\": \"urgent\",", "");
        assert!(matches!(parse_orders(&bad, Timestamp(0)), Err(Error::Invalid { ref reason, .. }) if reason.contains("priority")));
        let bad = sample_json("WO-1").replace("2026-11-23T09:10:00+08:00", "yesterday");
        assert!(matches!(parse_orders(&bad, Timestamp(0)), Err(Error::Invalid { ref field, .. }) if field == "fault.reported_at"));
        let bad = sample_json("WO-1").replace("\"urgent\"", "\"whenever\"");
        assert!(matches!(parse_orders(&bad, Timestamp(0)), Err(Error::Invalid { ref field, .. }) if field == "priority"));
        let bad = sample_json("../etc");
        assert!(matches!(parse_orders(&bad, Timestamp(0)), Err(Error::Invalid { ref field, .. }) if field == "id"));
        let bad = sample_json("WO-1").replace("39.9087", "91.5");
        assert!(matches!(parse_orders(&bad, Timestamp(0)), Err(Error::Invalid { ref field, .. }) if field == "site.lat"));
        assert!(matches!(parse_orders("{not json", Timestamp(0)), Err(Error::Invalid { ref field, .. }) if field == "$"));
    }

    #[test]
    fn arrays_name_the_index_and_refuse_duplicates() {
        let good = sample_json("WO-1");
        let bad = sample_json("WO-2").replace("\"王女士\"", "\"  \"");
        match parse_orders(&format!("[{good},{bad}]"), Timestamp(0)) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "[1].customer.contact"),
            other => panic!("{other:?}"),
        }
        assert!(parse_orders(&format!("[{good},{good}]"), Timestamp(0)).is_err());
        assert_eq!(parse_orders(&format!("[{good}]"), Timestamp(0)).unwrap().len(), 1);
    }

    proptest::proptest! {
        /// Arbitrary text, and valid orders with one byte changed, never panic: the import
        /// either succeeds or names a field.
        #[test]
        fn import_never_panics(text in ".{0,400}", pos in 0usize..2000, byte in proptest::num::u8::ANY) {
            let _ = parse_orders(&text, Timestamp(0));
            let mut bytes = sample_json("WO-1").into_bytes();
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Ok(mutated) = String::from_utf8(bytes) {
                match parse_orders(&mutated, Timestamp(0)) {
                    Ok(orders) => proptest::prop_assert_eq!(orders.len(), 1),
                    Err(Error::Invalid { field, .. }) => proptest::prop_assert!(!field.is_empty()),
                    Err(other) => proptest::prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
