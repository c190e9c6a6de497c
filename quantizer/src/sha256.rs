//! SHA-256 (FIPS 180-4), for the source-model hash recorded in a `.ferrite` file's metadata: the
//! `sha2` crate's digest as a plain array.

use sha2::Digest;

/// The SHA-256 digest of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    fn hex(d: [u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn known_digests() {
        assert_eq!(
            hex(super::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(super::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            hex(super::digest(&long)),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn matches_the_goldens_record_of_a_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tflite");
        let model = std::fs::read(dir.join("fixtures/small_cnn.tflite")).unwrap();
        let golden = std::fs::read_to_string(dir.join("goldens/small_cnn.golden")).unwrap();
        let line = golden.lines().find(|l| l.starts_with("sha256 ")).unwrap();
        assert_eq!(format!("sha256 {}", hex(super::digest(&model))), line);
    }
}
