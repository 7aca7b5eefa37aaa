//! Records the git commit the binary is built from, for `moneykit_auth_build_info`.
//! `MONEYKIT_AUTH_GIT_COMMIT` overrides it (packagers building outside a checkout);
//! without either, `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=MONEYKIT_AUTH_GIT_COMMIT");
    let commit = std::env::var("MONEYKIT_AUTH_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MONEYKIT_AUTH_GIT_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself (switching branches) and the branch's ref.
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let mut watched = vec![Path::new(&git_dir).join("HEAD")];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(Path::new(&common).join(branch));
        }
        watched.push(Path::new(&common).join("packed-refs"));
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
