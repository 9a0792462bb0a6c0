//! Encryption at rest in constant memory: a 199 MiB photo is hashed and encrypted into the
//! blob store, analysed, read back and re-verified, and the heap's peak stays a few MiB (a
//! counting allocator of this test binary's own; one test per binary so nothing else
//! allocates meanwhile).

use std::io::{Read, Write};

use onsite_tests::alloc::{peak_since, reset, Counting};

#[global_allocator]
static A: Counting = Counting;

#[test]
fn a_200_mb_photo_is_encrypted_read_and_verified_in_constant_memory() {
    const SIZE: usize = 199 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    // A JPEG start, then noise: the file is what matters, not its picture.
    let path = dir.path().join("huge.jpg");
    let mut hasher = onsite_core::hash::Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut block = vec![0u8; 1 << 20];
        let mut s = 0x9e3779b97f4a7c15u64;
        let mut written = 0;
        while written < SIZE {
            for b in block.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = s as u8;
            }
            if written == 0 {
                block[..4].copy_from_slice(&[0xff, 0xd8, 0xff, 0xe0]);
            }
            f.write_all(&block).unwrap();
            hasher.update(&block);
            written += block.len();
        }
    }
    let sha = onsite_core::hash::hex(&hasher.finalize());
    let d = onsite_core::Device::open(onsite_tests::options(dir.path().join("device"))).unwrap();
    d.import_orders_json(onsite_tests::SAMPLE_ORDERS).unwrap();

    let base = reset();
    let r = d.ingest_photo("WO-20261123-0001", None, onsite_core::device::PhotoSource::Path(&path), None).unwrap();
    let ingest_peak = peak_since(base);
    assert_eq!(r.sha256, sha, "the content address is the plaintext's SHA-256");
    assert_eq!(r.size as usize, SIZE);
    let on_disk = std::fs::metadata(d.blob_path(&sha)).unwrap().len() as usize;
    assert!(on_disk > SIZE, "stored encrypted (header, tags, trailer): {on_disk}");
    let raw = std::fs::read(d.blob_path(&sha)).map(|b| b[..4096].to_vec()).unwrap();
    assert!(!raw.windows(4).any(|w| w == [0xff, 0xd8, 0xff, 0xe0]), "no plaintext on disk");

    let base = reset();
    assert_eq!(d.verify_blob(&sha).unwrap() as usize, SIZE);
    let mut reader = d.open_blob(&sha).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut check = onsite_core::hash::Sha256::new();
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        check.update(&buf[..n]);
    }
    let read_peak = peak_since(base);
    assert_eq!(onsite_core::hash::hex(&check.finalize()), sha);
    eprintln!("heap peak: ingest {:.1} MiB, read back {:.1} MiB", ingest_peak as f64 / 1048576.0, read_peak as f64 / 1048576.0);
    assert!(ingest_peak < 16 << 20, "ingest peak {ingest_peak} bytes");
    assert!(read_peak < 4 << 20, "read peak {read_peak} bytes");
}
