//! Size baseline: reads the file and prints the digest of a summary holding only its length.

fn main() -> std::process::ExitCode {
    compare_flatbuffers::size_main(|b| {
        Ok(compare_flatbuffers::Summary {
            buffers: vec![(0, b.len())],
            ..Default::default()
        })
    })
}
