//! Automerge's chunk framing, read without loading a document: splitting concatenated
//! chunks, parsing each change once with its checksum checked, and each change's hash and
//! dependencies from its header. Pushed bytes, stored chunks and the push mark all go
//! through here.

use automerge::ChangeHash;

use super::document::Error;

/// The magic bytes that open every Automerge chunk.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Splits concatenated Automerge chunks (magic, checksum, type, LEB128 length, payload) and
/// returns each with its type (0 document, 1 change, 2 compressed change). Every byte must
/// belong to a chunk: trailing or truncated bytes are an error.
pub fn split_chunks(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, Error> {
    let bad = |why: &str| Error::NotChanges(why.to_string());
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 10 || rest[..4] != CHUNK_MAGIC {
            return Err(bad("bytes that are not an Automerge chunk"));
        }
        let kind = rest[8];
        let (len, n) = uleb128(&rest[9..]).map_err(bad)?;
        let i = 9 + n;
        let end = usize::try_from(len).ok().and_then(|l| l.checked_add(i)).filter(|&e| e <= rest.len()).ok_or_else(|| bad("a truncated chunk"))?;
        out.push((kind, &rest[..end]));
        at += end;
    }
    Ok(out)
}

/// An unsigned LEB128 number at the start of `bytes` (at most 9 bytes, as a chunk length
/// takes), and how many bytes it took.
fn uleb128(bytes: &[u8]) -> Result<(u64, usize), &'static str> {
    let (mut value, mut shift) = (0u64, 0u32);
    for (i, b) in bytes.iter().enumerate() {
        if shift > 56 {
            return Err("a chunk length too long");
        }
        value |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("a truncated chunk length")
}

/// Every change in `chunks`; an error if any byte is not a change chunk whose checksum is
/// its hash's (Automerge checks that only when it loads bytes, not when it applies changes).
pub fn parse_changes(chunks: &[&[u8]]) -> Result<Vec<automerge::Change>, Error> {
    let mut out = Vec::new();
    for bytes in chunks {
        for (kind, chunk) in split_chunks(bytes)? {
            if kind == 0 {
                return Err(Error::NotChanges("a whole document among changes".into()));
            }
            let change = automerge::Change::try_from(chunk).map_err(|e| Error::NotChanges(e.to_string()))?;
            if chunk.get(4..8) != Some(&change.hash().0[..4]) {
                return Err(Error::NotChanges("a change chunk whose checksum does not match its contents".into()));
            }
            out.push(change);
        }
    }
    Ok(out)
}

/// Each change's hash and the hashes it depends on, for `chunks` of change chunks, without
/// decoding the operations: an uncompressed change chunk's hash is the SHA-256 of everything
/// after its checksum, and its body opens with its dependencies (Automerge's binary format).
/// A chunk whose checksum is not its hash's, and a compressed one, is parsed whole.
pub fn change_links(chunks: &[&[u8]]) -> Result<Vec<(ChangeHash, Vec<ChangeHash>)>, Error> {
    let mut out = Vec::new();
    for bytes in chunks {
        for (kind, chunk) in split_chunks(bytes)? {
            if let Some(links) = (kind == 1).then(|| header_links(chunk)).flatten() {
                out.push(links);
                continue;
            }
            for change in parse_changes(&[chunk])? {
                out.push((change.hash(), change.deps().to_vec()));
            }
        }
    }
    Ok(out)
}

/// The hash and dependencies of one uncompressed change chunk (magic, checksum, type, LEB128
/// length, then the body: a LEB128 count of dependencies and their 32-byte hashes).
fn header_links(chunk: &[u8]) -> Option<(ChangeHash, Vec<ChangeHash>)> {
    let hash = crate::hash::Sha256::digest(chunk.get(8..)?);
    if chunk.get(4..8)? != &hash[..4] {
        return None;
    }
    let body = 9 + uleb128(chunk.get(9..)?).ok()?.1;
    let (count, n) = uleb128(chunk.get(body..)?).ok()?;
    let at = body + n;
    let deps = chunk.get(at..at.checked_add(usize::try_from(count).ok()?.checked_mul(32)?)?)?;
    let deps = deps.chunks_exact(32).map(|d| <[u8; 32]>::try_from(d).ok().map(ChangeHash)).collect::<Option<Vec<_>>>()?;
    Some((ChangeHash(hash), deps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    /// The hashes and dependencies read from the chunk headers are Automerge's own, for
    /// linear and merged histories, a large change and a compressed one; a damaged chunk is
    /// refused like the full parse refuses it.
    #[test]
    fn change_links_read_from_the_headers_are_automerges() {
        let (mut base, push) = crate::order::document::tests::base_and_push();
        let (mut left, mut right) = (base.fork(), base.fork());
        left.put(automerge::ROOT, "left", 1).unwrap();
        left.commit();
        right.put(automerge::ROOT, "right", 2).unwrap();
        right.commit();
        left.merge(&mut right).unwrap();
        let heads = left.get_heads();
        left.put(automerge::ROOT, "after the merge", 3).unwrap();
        for k in 0..3000 {
            left.put(automerge::ROOT, format!("large {k}"), format!("a value that takes some room {k}")).unwrap();
        }
        left.commit();
        let merged = left.save_after(&base.get_heads());
        let large = left.get_changes(&heads).into_iter().next().unwrap();
        let compressed = large.clone().bytes().to_vec();
        assert_eq!(split_chunks(&compressed).unwrap()[0].0, 2, "a compressed change chunk");
        let full = |chunks: &[&[u8]]| parse_changes(chunks).unwrap().iter().map(|c| (c.hash(), c.deps().to_vec())).collect::<Vec<_>>();
        for chunks in [vec![&push[..]], vec![&merged[..]], vec![&compressed[..]], vec![&push[..], &compressed[..]]] {
            assert_eq!(change_links(&chunks).unwrap(), full(&chunks));
        }
        assert!(full(&[&merged[..]]).iter().any(|(_, deps)| deps.len() == 2), "a change with two dependencies");
        let mut bad = push.clone();
        bad[5] ^= 0x01;
        assert!(change_links(&[&bad]).is_err());
        // 127 dependencies claimed by a chunk far too short for them, under a good checksum.
        let first = split_chunks(&push).unwrap()[0].1.to_vec();
        let mut short = first.clone();
        let body = 9 + short[9..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        short[body] = 0x7f;
        let hash = crate::hash::Sha256::digest(&short[8..]);
        short[4..8].copy_from_slice(&hash[..4]);
        assert!(header_links(&first).is_some());
        assert!(header_links(&short).is_none());
        assert!(change_links(&[&short]).is_err());
    }
}
