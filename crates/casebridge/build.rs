//! The git commit this binary is built from, for `casebridge --version` and
//! the `casebridge_build_info` metric, as `CASEBRIDGE_GIT_COMMIT`.
//!
//! `CASEBRIDGE_GIT_COMMIT` set in the build's environment wins (a package
//! built from a source tarball has no `.git`); otherwise `git rev-parse`;
//! without either, `unknown`. It is the commit the build started from: a
//! build of uncommitted changes says that commit too.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CASEBRIDGE_GIT_COMMIT");
    let commit = std::env::var("CASEBRIDGE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CASEBRIDGE_GIT_COMMIT={}", commit.trim());
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Built again when HEAD moves: HEAD itself (a checkout), the branch's
    // ref (a commit), packed refs. HEAD is the worktree's own, refs are in
    // the common git directory (the same one outside a worktree). Only
    // files that exist: Cargo reruns a build script on every build while a
    // file it watches is missing.
    let mut files = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        files.push(Path::new(&dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        let common = Path::new(&common);
        files.push(common.join("packed-refs"));
        if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
            let branch = common.join(branch);
            // A branch only in packed-refs gets its own file at its next
            // commit: watch its folder (Cargo scans a watched folder's
            // files) until it has one.
            match branch.parent() {
                Some(folder) if !branch.is_file() => files.push(folder.to_path_buf()),
                _ => files.push(branch),
            }
        }
    }
    for file in files {
        if file.exists() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    Some(commit)
}
