//! Encryption at rest through the device: what lands on disk, wrong and missing keys, and
//! the in-place migration of a plain store.

use std::path::Path;
use std::sync::Arc;

use super::{Encryption, FixedKey, KeyError, KeySource, StoreKey};
use crate::device::testkit;
use crate::device::PhotoSource;
use crate::evidence::photo::tests::make_jpeg;
use crate::order::import::tests::sample_json;
use crate::{Device, Error};

/// Every file under `dir` with its bytes, sorted by path.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` with its bytes' SHA-256, to prove nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    files(dir).into_iter().map(|(p, b)| (p, crate::hash::hex(&crate::hash::Sha256::digest(b)))).collect()
}

fn all_bytes(dir: &Path) -> Vec<u8> {
    files(dir).into_iter().flat_map(|(_, b)| b).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn open(dir: &Path, encryption: Encryption) -> Result<Device, Error> {
    Device::open(testkit::options(dir).with_clock(testkit::clock()).with_encryption(encryption))
}

fn keyed(k: StoreKey) -> Encryption {
    Encryption::Key(Arc::new(FixedKey(k)))
}

/// A device with an order, a note with a recognizable text and a photo.
fn populate(d: &Device) -> (String, Vec<u8>) {
    d.import_orders_json(&format!("[{}]", sample_json("WO-1"))).unwrap();
    d.add_note("WO-1", "客户王先生 13800138000 secret-marker").unwrap();
    let jpeg = make_jpeg(800, 600, 5, None);
    let r = d.ingest_photo("WO-1", None, PhotoSource::Bytes(&jpeg), None).unwrap();
    (r.sha256, jpeg)
}

#[test]
fn nothing_readable_lands_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path(), keyed(testkit::key())).unwrap();
    let (sha, jpeg) = populate(&d);
    assert!(d.store().is_encrypted());
    // Read while open (WAL, journal, blobs), and again after close.
    for pass in 0..2 {
        let bytes = all_bytes(dir.path());
        assert!(!contains(&bytes, b"SQLite format 3"), "pass {pass}: a plain database header");
        assert!(!contains(&bytes, b"secret-marker"), "pass {pass}: the note's text is readable");
        assert!(!contains(&bytes, "王先生".as_bytes()));
        assert!(!contains(&bytes, &jpeg[..64]), "pass {pass}: the photo's bytes are readable");
        if pass == 0 {
            assert_eq!(d.blob(&sha).unwrap(), jpeg, "the app reads its photo back");
            assert_eq!(d.verify_blob(&sha).unwrap(), jpeg.len() as u64);
        }
    }
    drop(d);
    let d = open(dir.path(), keyed(testkit::key())).unwrap();
    assert_eq!(d.blob(&sha).unwrap(), jpeg, "and after a reopen");
    assert!(d.get("WO-1").is_ok());
}

#[test]
fn a_wrong_or_missing_key_is_its_own_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    drop(populate(&open(dir.path(), keyed(testkit::key())).unwrap()));
    let before = snapshot(dir.path());
    let other = StoreKey::from_bytes(&[0x17; 32]).unwrap();
    let wrong = open(dir.path(), keyed(other.clone())).err().unwrap();
    assert!(matches!(wrong, Error::Store(crate::store::Error::Key(KeyError::Wrong { .. }))), "{wrong}");
    assert!(!wrong.to_string().contains("corrupt") && !wrong.to_string().contains("damaged"), "{wrong}");
    let missing = open(dir.path(), Encryption::Plain).err().unwrap();
    assert!(matches!(missing, Error::Store(crate::store::Error::Key(KeyError::Missing { .. }))), "{missing}");
    struct Locked;
    impl KeySource for Locked {
        fn store_key(&self) -> Result<StoreKey, KeyError> {
            Err(KeyError::Unavailable { reason: "the keystore is locked until first unlock".into() })
        }
    }
    let locked = open(dir.path(), Encryption::Key(Arc::new(Locked))).err().unwrap();
    assert!(matches!(locked, Error::Store(crate::store::Error::Key(KeyError::Unavailable { .. }))), "{locked}");
    // Without the key fingerprint beside it, SQLCipher's refusal still reads as a wrong key.
    std::fs::remove_file(dir.path().join(crate::store::cipher::KEY_ID_FILE)).unwrap();
    let wrong = open(dir.path(), keyed(other)).err().unwrap();
    assert!(matches!(wrong, Error::Store(crate::store::Error::Key(KeyError::Wrong { .. }))), "{wrong}");
    let mut after = snapshot(dir.path());
    after.retain(|(p, _)| before.iter().any(|(q, _)| q == p));
    let mut expected = before.clone();
    expected.retain(|(p, _)| !p.ends_with(crate::store::cipher::KEY_ID_FILE));
    assert_eq!(after, expected, "every file is byte for byte what it was");
    assert!(open(dir.path(), keyed(testkit::key())).is_ok(), "the right key still opens it");
}

#[test]
fn a_damaged_file_with_the_right_key_is_corrupt_not_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    drop(populate(&open(dir.path(), keyed(testkit::key())).unwrap()));
    let db = dir.path().join(crate::store::DB_FILE);
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[16..4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let e = open(dir.path(), keyed(testkit::key())).err().unwrap();
    assert!(matches!(e, Error::Store(crate::store::Error::Corrupt { .. })), "{e}");
}

#[test]
fn a_plain_store_is_encrypted_in_place_with_everything_kept() {
    let dir = tempfile::tempdir().unwrap();
    let plain = open(dir.path(), Encryption::Plain).unwrap();
    let (sha, jpeg) = populate(&plain);
    let view = plain.get("WO-1").unwrap();
    let journal = plain.journal(None).unwrap().len();
    let thumb = plain.photos("WO-1").unwrap()[0].thumb_sha256.clone().unwrap();
    assert!(!plain.store().is_encrypted());
    drop(plain);
    assert!(contains(&all_bytes(dir.path()), b"secret-marker"), "the plain store was readable");
    let d = open(dir.path(), keyed(testkit::key())).unwrap();
    assert!(d.store().is_encrypted());
    assert_eq!(d.get("WO-1").unwrap(), view);
    assert_eq!(d.journal(None).unwrap().len(), journal);
    assert!(d.verify_journal().unwrap().sealed());
    assert_eq!(d.blob(&sha).unwrap(), jpeg);
    assert!(d.blob(&thumb).is_ok(), "the thumbnail too");
    d.add_note("WO-1", "after the migration").unwrap();
    drop(d);
    let bytes = all_bytes(dir.path());
    assert!(!contains(&bytes, b"secret-marker") && !contains(&bytes, &jpeg[..64]), "nothing plain is left");
    assert!(!dir.path().join("onsite.sqlite3.encrypting").exists());
    // The migrated file uses this store's cipher settings (HMAC-SHA256 pages), not
    // SQLCipher's defaults: keyed with the defaults only, it does not open.
    let db = dir.path().join(crate::store::DB_FILE);
    let defaults = rusqlite::Connection::open(&db).unwrap();
    defaults.execute_batch(&format!("PRAGMA cipher_log_level = NONE; PRAGMA key = \"{}\";", testkit::key().sqlcipher_pragma())).unwrap();
    assert!(defaults.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)).is_err());
    drop(defaults);
    assert!(crate::store::cipher::open_connection(&db, Some(&testkit::key())).is_ok());
    // A second open has nothing left to migrate.
    assert_eq!(open(dir.path(), keyed(testkit::key())).unwrap().get("WO-1").unwrap().order.notes.len(), 2);
}
