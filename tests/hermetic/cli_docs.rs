//! Where people expect them: `regkeep --version` with the commit, shell completions, man pages.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_regkeep");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn version_names_the_commit() {
    let (code, text) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        text.starts_with(&format!("regkeep {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let commit = text
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _regkeep"),
        ("zsh", "#compdef regkeep"),
        ("fish", "complete -c regkeep"),
    ] {
        let (code, text) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..text.len().min(300)]
        );
        assert!(
            text.contains("registry"),
            "{shell}: the subcommands are in it"
        );
    }
    let (code, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
}

#[test]
fn man_pages_for_the_program_and_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let (code, listed) = run(&["man", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{listed}");
    for page in [
        "regkeep.1",
        "regkeep-registry.1",
        "regkeep-serve.1",
        "regkeep-apikey.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: roff"
        );
        assert!(listed.contains(page), "{listed}");
    }
    let registry = std::fs::read_to_string(out.join("regkeep-registry.1")).unwrap();
    assert!(
        registry.contains("regkeep\\-registry"),
        "named for its command"
    );
    let (code, top) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(
        top.contains(".TH regkeep"),
        "{}",
        &top[..top.len().min(200)]
    );
}

#[test]
fn serve_help_lists_only_what_serve_takes() {
    let (code, serve) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(serve.contains("--listen"), "{serve}");
    for client in ["--url", "--as-account", "--json", "Client options"] {
        assert!(
            !serve.contains(client),
            "serve --help lists {client}: {serve}"
        );
    }
    // The commands that talk to regkeep still list them, under their own heading.
    let (code, add) = run(&["registry", "add", "--help"]);
    assert_eq!(code, 0);
    for client in ["--url", "--as-account", "--json", "Client options"] {
        assert!(
            add.contains(client),
            "registry add --help misses {client}: {add}"
        );
    }
    // The man page of serve leaves them out too.
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = run(&["man", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    let page = std::fs::read_to_string(dir.path().join("regkeep-serve.1")).unwrap();
    assert!(page.contains("listen"), "{page}");
    assert!(!page.contains("as\\-account"), "{page}");

    // Nor do the completion scripts offer them for serve (the generators list hidden options).
    let (_, bash) = run(&["completions", "bash"]);
    let opts_of = |section: &str| {
        let at = bash.find(&format!("{section})\n")).unwrap();
        bash[at..].lines().nth(1).unwrap().to_owned()
    };
    let serve_opts = opts_of("regkeep__subcmd__serve");
    assert!(
        serve_opts.contains("--listen") && !serve_opts.contains("--url"),
        "{serve_opts}"
    );
    let add_opts = opts_of("regkeep__subcmd__registry__subcmd__add");
    assert!(
        add_opts.contains("--url") && add_opts.contains("--as-account"),
        "{add_opts}"
    );
    let (_, fish) = run(&["completions", "fish"]);
    let serve_lines: Vec<&str> = fish
        .lines()
        .filter(|l| l.contains("__fish_regkeep_using_subcommand serve"))
        .collect();
    assert!(
        serve_lines.iter().any(|l| l.contains("-l listen")),
        "{fish}"
    );
    assert!(
        !serve_lines.iter().any(|l| l.contains("-l url")),
        "{serve_lines:?}"
    );

    // Given anyway, they are refused instead of silently ignored, naming what serve takes.
    let out = Command::new(BIN)
        .args(["serve", "--url", "http://0.0.0.0:9999", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--url, --json") && err.contains("--listen"),
        "{err}"
    );
}
