//! libFuzzer target: `ferromq::fuzzing::parse_command` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(ferromq::fuzzing::parse_command(data));
});
