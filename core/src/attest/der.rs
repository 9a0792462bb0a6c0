//! A strict DER reader for the attestation extensions (Android's KeyDescription, Apple's
//! nonce): definite, minimal lengths; minimal tag numbers; BOOLEAN only 0x00/0xFF; INTEGER
//! minimal and at most 8 bytes. Anything else is an error, never a guess.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct DerError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, DerError> {
    Err(DerError(what.into()))
}

pub const UNIVERSAL: u8 = 0;
pub const CONTEXT: u8 = 2;

/// One element: class, constructed bit, tag number, contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub class: u8,
    pub constructed: bool,
    pub tag: u32,
    pub value: &'a [u8],
}

/// Elements one after another.
pub struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn element(&mut self) -> Result<Tlv<'a>, DerError> {
        let b = self.rest;
        let first = *b.first().ok_or_else(|| DerError("unexpected end".into()))?;
        let mut at = 1;
        let mut tag = u32::from(first & 0x1f);
        if tag == 0x1f {
            tag = 0;
            loop {
                let byte = *b.get(at).ok_or_else(|| DerError("cut in a tag".into()))?;
                if tag == 0 && byte == 0x80 {
                    return bad("a tag number with a leading zero");
                }
                if at > 4 {
                    return bad("a tag number too large");
                }
                tag = (tag << 7) | u32::from(byte & 0x7f);
                at += 1;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            if tag < 0x1f {
                return bad("a small tag number in long form");
            }
        }
        let len_byte = *b.get(at).ok_or_else(|| DerError("cut before a length".into()))?;
        at += 1;
        let len = if len_byte < 0x80 {
            usize::from(len_byte)
        } else {
            let n = usize::from(len_byte & 0x7f);
            if n == 0 {
                return bad("an indefinite length");
            }
            if n > 4 {
                return bad("a length too large");
            }
            let bytes = b.get(at..at + n).ok_or_else(|| DerError("cut in a length".into()))?;
            if bytes[0] == 0 {
                return bad("a length with a leading zero");
            }
            let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            if len < 0x80 {
                return bad("a short length in long form");
            }
            at += n;
            len
        };
        let value = b
            .get(at..at.checked_add(len).ok_or_else(|| DerError("length overflow".into()))?)
            .ok_or_else(|| DerError("an element longer than its input".into()))?;
        self.rest = &b[at + len..];
        Ok(Tlv { class: first >> 6, constructed: first & 0x20 != 0, tag, value })
    }

    /// The next element, which must be universal `tag`.
    pub fn expect(&mut self, tag: u32, constructed: bool) -> Result<&'a [u8], DerError> {
        let t = self.element()?;
        if t.class != UNIVERSAL || t.tag != tag || t.constructed != constructed {
            return bad(format!("expected universal tag {tag}, found class {} tag {}", t.class, t.tag));
        }
        Ok(t.value)
    }

    pub fn sequence(&mut self) -> Result<Der<'a>, DerError> {
        Ok(Der::new(self.expect(16, true)?))
    }

    pub fn integer(&mut self) -> Result<i64, DerError> {
        integer(self.expect(2, false)?)
    }

    pub fn enumerated(&mut self) -> Result<i64, DerError> {
        integer(self.expect(10, false)?)
    }

    pub fn octets(&mut self) -> Result<&'a [u8], DerError> {
        self.expect(4, false)
    }

    pub fn boolean(&mut self) -> Result<bool, DerError> {
        match self.expect(1, false)? {
            [0x00] => Ok(false),
            [0xff] => Ok(true),
            other => bad(format!("a BOOLEAN of {} byte(s) {:02x?}", other.len(), other)),
        }
    }

    pub fn end(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            bad(format!("{} trailing byte(s)", self.rest.len()))
        }
    }
}

pub fn integer(v: &[u8]) -> Result<i64, DerError> {
    match v {
        [] => bad("an empty INTEGER"),
        [0x00, b, ..] if b & 0x80 == 0 => bad("an INTEGER with a redundant leading zero"),
        [0xff, b, ..] if b & 0x80 != 0 => bad("an INTEGER with a redundant leading 0xff"),
        _ if v.len() > 8 => bad("an INTEGER larger than 64 bits"),
        _ => {
            let mut n: i64 = if v[0] & 0x80 != 0 { -1 } else { 0 };
            for &b in v {
                n = (n << 8) | i64::from(b);
            }
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_forms_are_required() {
        assert_eq!(Der::new(&[0x02, 0x01, 0x05]).integer().unwrap(), 5);
        assert_eq!(Der::new(&[0x02, 0x02, 0x00, 0x80]).integer().unwrap(), 128);
        assert_eq!(Der::new(&[0x02, 0x01, 0xff]).integer().unwrap(), -1);
        assert!(Der::new(&[0x02, 0x02, 0x00, 0x05]).integer().is_err(), "redundant zero");
        assert!(Der::new(&[0x01, 0x01, 0x01]).boolean().is_err(), "BOOLEAN 0x01");
        assert!(Der::new(&[0x04, 0x80, 0x00, 0x00]).octets().is_err(), "indefinite");
        assert!(Der::new(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).octets().is_err(), "non-minimal length");
        assert!(Der::new(&[0x04, 0x05, 1, 2]).octets().is_err(), "longer than input");
        // [704] EXPLICIT: bf 85 40.
        let t = Der::new(&[0xbf, 0x85, 0x40, 0x00]).element().unwrap();
        assert_eq!((t.class, t.constructed, t.tag), (CONTEXT, true, 704));
        assert!(Der::new(&[0xbf, 0x80, 0x05, 0x00]).element().is_err(), "leading zero in a tag");
        assert!(Der::new(&[0xbf, 0x05, 0x00]).element().is_err(), "small tag in long form");
    }
}
