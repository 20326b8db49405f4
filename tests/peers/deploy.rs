//! The deployment files: the systemd unit in deploy/ passes `systemd-analyze verify` without a
//! single warning (an unknown or misspelt directive is only a warning to systemd, so a warning
//! fails here), with ExecStart pointing at the binary this build made.

use std::process::Command;

/// `systemd-analyze verify` of `unit` (text) saved as regkeep.service: (success, its stderr).
fn verify(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regkeep.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect(
            "systemd-analyze runs (Debian's systemd package; scripts/install-deps.sh installs it)",
        );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    crate::skip_without_peers!();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/regkeep.service"
    ))
    .unwrap()
    .replace("/usr/local/bin/regkeep", env!("CARGO_BIN_EXE_regkeep"));
    let (ok, warnings) = verify(&unit);
    assert!(ok, "systemd-analyze verify failed:\n{warnings}");
    assert!(
        !warnings.contains("regkeep.service"),
        "systemd has something to say about the unit:\n{warnings}"
    );
    for hardening in [
        "DynamicUser=yes",
        "StateDirectory=regkeep",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "MemoryMax=",
    ] {
        assert!(unit.contains(hardening), "the unit sets {hardening}");
    }
    // The check can fail: a misspelt directive is a warning it reports.
    let (_, warnings) = verify(&unit.replace("PrivateTmp=yes", "PrivateTemp=yes"));
    assert!(warnings.contains("PrivateTemp"), "{warnings}");
}
