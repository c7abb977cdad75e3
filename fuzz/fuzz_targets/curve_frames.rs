//! libFuzzer target: `ferromq::fuzzing::curve_frames` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(ferromq::fuzzing::curve_frames(data));
});
