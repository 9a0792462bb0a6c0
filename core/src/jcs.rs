//! JSON Canonicalization Scheme (RFC 8785): the one byte form of a JSON value that is hashed
//! and signed (receipts, bundle manifests). Object members are sorted by the UTF-16 code units
//! of their names, strings use the minimal ECMAScript escaping, numbers the ECMAScript
//! `Number.prototype.toString` form of the IEEE-754 double, and there is no whitespace.
//!
//! Integers outside the range a double holds exactly (|n| > 2^53) are refused rather than
//! silently rounded: a signed document must mean what its author's numbers said.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{0} cannot be represented in canonical JSON (NaN and infinities are not JSON)")]
    NotFinite(f64),
    #[error("integer {0} is beyond 2^53 and would change when read as an IEEE-754 double")]
    Inexact(String),
    #[error("the bytes are not canonical JSON (RFC 8785): {0}")]
    NotCanonical(String),
}

const MAX_SAFE: u64 = 1 << 53;

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Canonical bytes of any serializable value.
pub fn to_vec_of<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let v = serde_json::to_value(value).map_err(|e| Error::NotCanonical(e.to_string()))?;
    to_vec(&v)
}

/// Parses `bytes` and checks they are exactly the canonical form of what they contain.
/// Duplicate member names are refused (a canonical document never has them).
pub fn parse_canonical(bytes: &[u8]) -> Result<Value, Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::NotCanonical(e.to_string()))?;
    let again = to_vec(&value)?;
    if again != bytes {
        return Err(Error::NotCanonical("re-encoding gives different bytes (key order, escaping, numbers, whitespace or a duplicate name)".into()));
    }
    Ok(value)
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u > MAX_SAFE {
                    return Err(Error::Inexact(u.to_string()));
                }
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE {
                    return Err(Error::Inexact(i.to_string()));
                }
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                out.extend_from_slice(number(f)?.as_bytes());
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{09}' => out.extend_from_slice(b"\\t"),
            '\u{0a}' => out.extend_from_slice(b"\\n"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\u{0d}' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// ECMAScript `Number.prototype.toString` of a double (ECMA-262 7.1.12.1), which RFC 8785
/// adopts. Rust's `{:e}` gives the shortest digits that round-trip, as ECMAScript requires.
pub fn number(f: f64) -> Result<String, Error> {
    if !f.is_finite() {
        return Err(Error::NotFinite(f));
    }
    if f == 0.0 {
        return Ok("0".into());
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    let digits = closest_shortest(mantissa.chars().filter(|c| c.is_ascii_digit()).collect(), e, f.abs());
    let k = digits.len() as i32;
    let n = e + 1; // value = 0.digits * 10^n
    let mut s = String::with_capacity(32);
    if f < 0.0 {
        s.push('-');
    }
    if k <= n && n <= 21 {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        s.push_str(&digits[..n as usize]);
        s.push('.');
        s.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-n) as usize));
        s.push_str(&digits);
    } else {
        s.push_str(&digits[..1]);
        if k > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if n > 0 { '+' } else { '-' });
        s.push_str(&(n - 1).abs().to_string());
    }
    Ok(s)
}

/// Rust gives a shortest round-tripping digit string; ECMAScript further requires, among the
/// shortest, the one closest to the exact value, and on a tie the even one. Checks the two
/// neighbours in the last digit against the exact decimal expansion of `x`.
fn closest_shortest(digits: String, e: i32, x: f64) -> String {
    let k = digits.len();
    let Ok(d) = digits.parse::<u64>() else { return digits };
    let round_trips = |c: u64| -> bool {
        let s = c.to_string();
        s.len() == k && format!("{}.{}e{}", &s[..1], &s[1..], e).parse::<f64>().ok() == Some(x)
    };
    // The exact value of x: at most 767 significant digits, which `{:.767e}` prints exactly.
    let exact = format!("{:.767e}", x);
    let Some((m, ex)) = exact.split_once('e') else { return digits };
    if ex.parse::<i32>().ok() != Some(e) {
        return digits;
    }
    let xd: String = m.chars().filter(|c| c.is_ascii_digit()).collect();
    let xd = xd.trim_end_matches('0');
    // Compare x with the midpoint `base.5` (in units of the last digit): Less/Equal/Greater.
    let vs_mid = |base: u64| -> std::cmp::Ordering {
        let mid = format!("{base:0k$}5");
        let n = mid.len().max(xd.len());
        format!("{xd:0<n$}").cmp(&format!("{mid:0<n$}"))
    };
    use std::cmp::Ordering::*;
    let pick = |a: u64, b: u64, ord: std::cmp::Ordering| -> u64 {
        // a < b are neighbours; ord is x against their midpoint.
        match ord {
            Less => a,
            Greater => b,
            Equal => {
                if a.is_multiple_of(2) {
                    a
                } else {
                    b
                }
            }
        }
    };
    let mut best = d;
    if round_trips(d + 1) {
        best = pick(d, d + 1, vs_mid(d));
    }
    if best == d && d > 0 && round_trips(d - 1) {
        best = pick(d - 1, d, vs_mid(d - 1));
    }
    best.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            assert_eq!(number(f64::from_bits(*bits)).unwrap(), *want, "bits {bits:016x}");
        }
        assert!(number(f64::from_bits(0x7fffffffffffffff)).is_err(), "NaN");
        assert!(number(f64::from_bits(0x7ff0000000000000)).is_err(), "Infinity");
    }

    /// RFC 8785 section 3.2.2: the sample input and its canonical form.
    #[test]
    fn rfc8785_sample_object() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        let want =
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(String::from_utf8(to_vec(&v).unwrap()).unwrap(), want);
    }

    /// RFC 8785 section 3.2.3: members sorted by UTF-16 code units (the emoji's surrogate
    /// pair sorts before U+FB33 although its code point is larger).
    #[test]
    fn rfc8785_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        let got = String::from_utf8(to_vec(&v).unwrap()).unwrap();
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(got, want);
    }

    #[test]
    fn non_canonical_bytes_and_unsafe_integers_are_refused() {
        assert!(parse_canonical(br#"{"a":1,"b":2}"#).is_ok());
        assert!(parse_canonical(br#"{"b":2,"a":1}"#).is_err(), "order");
        assert!(parse_canonical(br#"{"a": 1}"#).is_err(), "whitespace");
        assert!(parse_canonical(br#"{"a":1.0}"#).is_err(), "number form");
        assert!(parse_canonical(br#"{"a":"\u0041"}"#).is_err(), "escaping");
        assert!(parse_canonical(br#"{"a":1,"a":1}"#).is_err(), "duplicate names");
        assert!(parse_canonical(b"not json").is_err());
        assert!(matches!(to_vec(&serde_json::json!(9007199254740993u64)), Err(Error::Inexact(_))));
        assert!(matches!(to_vec(&serde_json::json!(-9007199254740993i64)), Err(Error::Inexact(_))));
        assert_eq!(to_vec(&serde_json::json!(-9007199254740992i64)).unwrap(), b"-9007199254740992");
    }

    proptest! {
        /// Every finite double's canonical text parses back to the same double.
        #[test]
        fn numbers_round_trip(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let s = number(f).unwrap();
            let back: f64 = s.parse().unwrap();
            prop_assert!(back == f || (back == 0.0 && f == 0.0), "{f:e} -> {s}");
        }

        /// Canonicalization is idempotent on arbitrary string-keyed objects.
        #[test]
        fn canonical_form_is_a_fixed_point(keys in proptest::collection::vec(".{0,6}", 0..8), n in any::<i32>(), f in -1e12f64..1e12) {
            let mut map = serde_json::Map::new();
            for (i, k) in keys.iter().enumerate() {
                map.insert(k.clone(), if i % 2 == 0 { serde_json::json!(n) } else { serde_json::json!([f, k]) });
            }
            let bytes = to_vec(&Value::Object(map)).unwrap();
            prop_assert_eq!(to_vec(&parse_canonical(&bytes).unwrap()).unwrap(), bytes);
        }
    }
}
