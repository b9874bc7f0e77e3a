//! Fuzzes the scanner's parser of a server's answer: any bytes must give an answer or a clean
//! error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tlsward::scan::hello::parse_answer(data, true);
    let _ = tlsward::scan::hello::parse_answer(data, false);
    let _ = tlsward::scan::cert::parse_head(data);
});
