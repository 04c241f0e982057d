//! A bad flag or an unreadable/invalid stack file: one clear line on stderr and exit code 2.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcore"))
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_flag_exits_2() {
    let (code, stderr) = run(&["--no-such-flag"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn unreadable_stack_file_is_one_line_and_exit_2() {
    let (code, stderr) = run(&["--stack", "/nonexistent/x.stack.json"]);
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot read stack file /nonexistent/x.stack.json"),
        "{stderr}"
    );
}

#[test]
fn invalid_stack_file_names_the_problem_and_exits_2() {
    let path = std::env::temp_dir().join(format!("bad-{}.stack.json", std::process::id()));
    std::fs::write(&path, br#"{"ast_version":"9.9.9","stack_name":"X"}"#).unwrap();
    let (code, stderr) = run(&["--stack", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("invalid stack file"), "{stderr}");
}

#[test]
fn unknown_source_exits_2() {
    let (code, stderr) = run(&["--source", "carrier-pigeon"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown --source"), "{stderr}");
}
