//! Feeds arbitrary text to the task text form's parser, as the console prompt, the CLI and
//! the protocol server pass it on. Nothing may panic; an error's column lies within the input
//! (or just past it); and a spec that parses writes back to text that parses to the same spec.
//! Run with `cargo +nightly fuzz run task_spec` from `fuzz/`. Crashes found become regression
//! tests in `src/runtime/task.rs`.

#![no_main]

use goliath::runtime::Kinds;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let kinds = Kinds::new();
    match kinds.parse(input) {
        Ok(submission) => {
            let text = kinds.format(&submission.spec);
            match kinds.parse(&text) {
                Ok(again) => assert_eq!(
                    again.spec, submission.spec,
                    "{input:?} was written back as {text:?}, which reads as another spec"
                ),
                Err(error) => panic!("{input:?} was written back as {text:?}, which fails: {error}"),
            }
        }
        Err(error) => {
            let characters = input.chars().count();
            assert!(
                error.column >= 1 && error.column <= characters + 1,
                "{input:?}: column {} outside 1..={}",
                error.column,
                characters + 1
            );
        }
    }
});
