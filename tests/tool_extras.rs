//! `hashkv completions SHELL` and `hashkv man [COMMAND]`: what they print.

use std::process::{Command, Output};

fn hashkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hashkv"))
        .args(args)
        .output()
        .expect("run hashkv")
}

/// Standard output of a run that must succeed with nothing on stderr.
fn stdout_of(args: &[&str]) -> String {
    let out = hashkv(args);
    assert!(
        out.status.success(),
        "hashkv {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "hashkv {args:?} wrote to stderr");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn completion_scripts_name_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for command in [
            "shell", "exec", "watch", "export", "import", "repair", "man",
        ] {
            assert!(
                script.contains(command),
                "{shell} script does not mention {command}"
            );
        }
        // Options of a command are completed too.
        assert!(script.contains("rdb-version"), "{shell}: no --rdb-version");
    }
}

#[test]
fn bash_completes_commands_and_options() {
    if Command::new("bash").arg("-c").arg("true").output().is_err() {
        eprintln!("skipped: no bash");
        return;
    }
    let script = stdout_of(&["completions", "bash"]);
    // Runs the completion function as bash would for `hashkv <words>` with
    // the cursor on the last word, and returns its candidates.
    let complete = |words: &[&str]| -> Vec<String> {
        let line = format!(
            "{script}\nCOMP_WORDS=(hashkv {words})\nCOMP_CWORD={cword}\n\
             _hashkv hashkv {last} {prev}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            words = words.join(" "),
            cword = words.len(),
            last = words.last().unwrap(),
            prev = if words.len() > 1 {
                words[words.len() - 2]
            } else {
                "hashkv"
            },
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &line])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
            .collect();
        got.sort();
        got
    };
    assert_eq!(complete(&["wa"]), ["watch"]);
    assert_eq!(complete(&["ex"]), ["exec", "export"]);
    assert_eq!(complete(&["co"]), ["compact", "completions"]);
    assert_eq!(
        complete(&["completions", "z"]),
        ["zsh"],
        "the shells are completed"
    );
    assert_eq!(complete(&["export", "--rdb-v"]), ["--rdb-version"]);
}

#[test]
fn man_page_lists_the_commands_and_their_pages_exist() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH hashkv 1 "), "no title:\n{page}");
    assert!(page.contains(concat!("hashkv ", env!("CARGO_PKG_VERSION"))));
    for command in [
        "shell",
        "watch",
        "export",
        "import",
        "check",
        "repair",
        "completions",
        "man",
    ] {
        let reference = format!("hashkv\\-{command}(1)");
        assert!(page.contains(&reference), "the page lists no {reference}");
        // Each page the tool's page refers to can be printed.
        let sub = stdout_of(&["man", command]);
        assert!(
            sub.contains(&format!(".TH hashkv-{command} 1 ")),
            "no title in the page of {command}"
        );
        assert!(
            sub.contains(&format!("hashkv {command}")),
            "{command}: synopsis"
        );
    }
    // clap's own help command has no page of its own.
    assert!(!page.contains("hashkv\\-help(1)"));
    let watch = stdout_of(&["man", "watch"]);
    assert!(
        watch.contains("\\fB\\-\\-json\\fR"),
        "watch's options:\n{watch}"
    );
    assert!(watch.contains("PATTERN"));
}

#[test]
fn unknown_shell_or_command_is_a_one_line_error() {
    for args in [&["completions", "tcsh"][..], &["man", "nope"]] {
        let out = hashkv(args);
        assert_eq!(out.status.code(), Some(2), "hashkv {args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "hashkv {args:?}: {err}");
        assert!(err.contains(args[1]), "hashkv {args:?}: {err}");
    }
}
