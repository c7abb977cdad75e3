//! libFuzzer target: `ferromq::fuzzing::rpub_publisher_ops` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(ferromq::fuzzing::rpub_publisher_ops(data));
});
