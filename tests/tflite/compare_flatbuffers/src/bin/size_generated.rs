//! Reads every field the importer needs with the flatc-generated code after its verifier.

fn main() -> std::process::ExitCode {
    compare_flatbuffers::size_main(compare_flatbuffers::walk_verified)
}
