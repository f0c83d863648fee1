//! The crash probe: before amm opens plugins in its own process, a child process (the same
//! executable, run again with a hidden subcommand that calls [`serve`]) opens them one after
//! another through the whole handshake, registration included, and reports each outcome on a
//! line of its stdout. The checks of the handshake catch files that are not plugins or were built
//! for another amm, but a damaged plugin can pass them and then crash whatever process opens it:
//! garbage in its code or relocations faults (SIGSEGV, SIGILL) or makes the dynamic loader end
//! the process (`exit(127)`). Here that kills only the child, and amm refuses the file by name.
//!
//! One child probes every file; when it dies, the file it had announced last is the culprit, and
//! a new child probes the files after it. A child that dies after reporting on all its files (a
//! plugin's destructor or a thread it started crashed) is followed by one child per file, to find
//! which. Nothing is cached: every amm process probes the files it is about to open.
use super::abi::not_a_plugin;
use super::abi::rebuild_hint;
use super::load::load_staged;
use crate::registry::Registry;
use anyhow::{anyhow, bail, Result};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Starts every line of the protocol; anything else a plugin prints on stdout is ignored.
const MARK: &str = "amm-probe: ";

/// How to start the probe child: `program args... --host-build ID -- FILE...` must call
/// [`serve`] with the build id and the files (`amm plugins probe` does).
#[derive(Clone, Debug)]
pub struct ProbeCommand {
    program: PathBuf,
    arg0: Option<OsString>,
    args: Vec<OsString>,
}

impl ProbeCommand {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self { program: program.into(), arg0: None, args: args.iter().map(OsString::from).collect() }
    }

    /// This process's own executable run again with `args`, through `/proc/self/exe` (Linux):
    /// the very file this process runs, even if it was replaced on disk since (a rebuild while a
    /// grid runs). Without /proc, probing fails with that path in the message.
    pub fn this_executable(args: &[&str]) -> Self {
        let mut c = Self::new("/proc/self/exe", args);
        c.arg0 = std::env::current_exe().ok().map(PathBuf::into_os_string);
        c
    }

    fn command(&self, files: &[PathBuf]) -> Command {
        let mut c = Command::new(&self.program);
        if let Some(a) = &self.arg0 {
            std::os::unix::process::CommandExt::arg0(&mut c, a);
        }
        c.args(&self.args).arg("--host-build").arg(super::build_id()).arg("--").args(files);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn shown(&self) -> String {
        let p = self.arg0.as_deref().map(Path::new).unwrap_or(&self.program);
        format!("{} {}", p.display(), self.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "))
    }
}

/// The child's side: checks that it runs on the host's libamm_core build (a probe on another
/// build would judge files by the wrong rules), then loads each file in turn, each into a fresh
/// registry with the built-ins, and reports on stdout. Returns an error only for the build check;
/// a refused file is a report, not an error.
pub fn serve(host_build: &str, files: &[PathBuf]) -> Result<()> {
    if host_build != super::build_id() {
        let why = format!(
            "the probe process runs libamm_core build {} but amm runs build {host_build}: the libamm_core.so on disk \
             changed since amm started (rebuilt?); run the command again",
            super::build_id()
        );
        emit(&crate::serde_json::json!({ "event": "wrong-build", "error": why }));
        bail!("{why}");
    }
    let builtins = Registry::with_builtins();
    for (i, file) in files.iter().enumerate() {
        emit(&crate::serde_json::json!({ "event": "start", "file": i }));
        let mut registry = builtins.clone();
        let outcome = load_staged(file, &mut registry, &mut |stage| {
            emit(&crate::serde_json::json!({ "event": "stage", "file": i, "stage": stage.describe() }))
        });
        emit(&match outcome {
            Ok(_) => crate::serde_json::json!({ "event": "ok", "file": i }),
            Err(e) => crate::serde_json::json!({
                "event": "refused",
                "file": i,
                "not_a_plugin": e.chain().any(|c| c.is::<super::NotAPlugin>()),
                "error": format!("{e:#}"),
            }),
        });
    }
    emit(&crate::serde_json::json!({ "event": "end" }));
    Ok(())
}

/// One protocol line, flushed at once: the process may die right after.
fn emit(v: &crate::serde_json::Value) {
    // Not holding the stdout lock across plugin code: a plugin printing from another thread
    // would wait for it forever.
    let mut o = std::io::stdout();
    let _ = writeln!(o, "{MARK}{v}");
    let _ = o.flush();
}

/// What one child said and how it ended.
struct ChildRun {
    /// Per file: `Ok` or the child's refusal (`NotAPlugin` kept).
    verdicts: Vec<Option<Result<()>>>,
    /// The files it announced, in order.
    started: usize,
    /// The stage the last announced file had reached.
    stage: Option<String>,
    wrong_build: Option<String>,
    status: ExitStatus,
    stderr: String,
}

fn run_child(cmd: &ProbeCommand, files: &[PathBuf]) -> Result<ChildRun> {
    let o = cmd.command(files).output().map_err(|e| anyhow!("could not start the plugin probe `{}`: {e}", cmd.shown()))?;
    let mut run = ChildRun {
        verdicts: (0..files.len()).map(|_| None).collect(),
        started: 0,
        stage: None,
        wrong_build: None,
        status: o.status,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        // A plugin may have printed without a newline just before a protocol line.
        let Some(at) = line.find(MARK) else { continue };
        let Ok(v) = crate::serde_json::from_str::<crate::serde_json::Value>(&line[at + MARK.len()..]) else { continue };
        let i = v["file"].as_u64().map(|i| i as usize).filter(|&i| i < files.len());
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        match (v["event"].as_str(), i) {
            (Some("start"), Some(i)) => {
                run.started = i + 1;
                run.stage = None;
            }
            (Some("stage"), Some(_)) => run.stage = Some(text("stage")),
            (Some("ok"), Some(i)) => run.verdicts[i] = Some(Ok(())),
            (Some("refused"), Some(i)) => {
                let e = text("error");
                run.verdicts[i] = Some(Err(if v["not_a_plugin"] == true { not_a_plugin(e) } else { anyhow!(e) }));
            }
            (Some("wrong-build"), _) => run.wrong_build = Some(text("error")),
            _ => {}
        }
    }
    Ok(run)
}

/// Probes `files` (each passed the ELF check) in child processes; one result per file: `Ok` when
/// a child opened and registered it and lived on, else why not, naming the file.
pub fn probe(cmd: &ProbeCommand, files: &[PathBuf]) -> Vec<Result<()>> {
    let mut out: Vec<Option<Result<()>>> = (0..files.len()).map(|_| None).collect();
    probe_into(cmd, files, &mut out);
    out.into_iter()
        .zip(files)
        .map(|(r, f)| r.unwrap_or_else(|| Err(anyhow!("plugin {}: the plugin probe did not report on it", f.display()))))
        .collect()
}

fn probe_into(cmd: &ProbeCommand, files: &[PathBuf], out: &mut [Option<Result<()>>]) {
    let mut next = 0;
    while next < files.len() {
        let rest = &files[next..];
        let fail_rest = |out: &mut [Option<Result<()>>], why: &str| {
            for (o, f) in out.iter_mut().zip(rest) {
                *o = Some(Err(anyhow!("plugin {}: not loaded: {why}", f.display())));
            }
        };
        let run = match run_child(cmd, rest) {
            Ok(r) => r,
            Err(e) => return fail_rest(&mut out[next..], &format!("{e:#}")),
        };
        if let Some(why) = run.wrong_build {
            return fail_rest(&mut out[next..], &why);
        }
        let mut verdicts = run.verdicts;
        if run.status.success() {
            for (o, v) in out[next..].iter_mut().zip(verdicts) {
                *o = v;
            }
            return;
        }
        let unfinished = run.started.checked_sub(1).filter(|&u| verdicts[u].is_none());
        match unfinished {
            // It died while opening a file: the files before it are judged, the rest needs a new child.
            Some(u) => {
                for (o, v) in out[next..next + u].iter_mut().zip(verdicts.drain(..u)) {
                    *o = v;
                }
                out[next + u] = Some(Err(crashed(&rest[u], run.status, run.stage.as_deref(), &run.stderr)));
                next += u + 1;
            }
            None if run.started == 0 => {
                let why = format!(
                    "the plugin probe `{}` failed before opening any plugin ({}){}",
                    cmd.shown(),
                    how(run.status),
                    said(&run.stderr)
                );
                return fail_rest(&mut out[next..], &why);
            }
            // It reported on what it opened and died afterwards: at exit (a destructor) or in a thread.
            None if rest.len() == 1 => {
                out[next] =
                    Some(Err(crashed(&rest[0], run.status, Some("after loading (at exit, or in a thread it started)"), &run.stderr)));
                return;
            }
            None => {
                for i in next..files.len() {
                    probe_into(cmd, &files[i..=i], &mut out[i..=i]);
                }
                return;
            }
        }
    }
}

/// The refusal of a file that killed the probe.
fn crashed(file: &Path, status: ExitStatus, stage: Option<&str>, stderr: &str) -> anyhow::Error {
    let verb = if std::os::unix::process::ExitStatusExt::signal(&status).is_some() { "crashed" } else { "ended the process" };
    let stage = stage.map(|s| format!(", {s}")).unwrap_or_default();
    anyhow!(
        "plugin {} {verb} while loading ({}{stage}) and was not loaded: the file is damaged or not built for this amm; {}{}",
        file.display(),
        how(status),
        rebuild_hint(None),
        said(stderr)
    )
}

/// `signal 11, SIGSEGV` or `exit code 127`.
fn how(status: ExitStatus) -> String {
    match (std::os::unix::process::ExitStatusExt::signal(&status), status.code()) {
        (Some(s), _) => match signal_name(s) {
            Some(n) => format!("signal {s}, {n}"),
            None => format!("signal {s}"),
        },
        (None, Some(c)) => format!("exit code {c}"),
        (None, None) => format!("{status}"),
    }
}

/// Linux's numbers (the same on every architecture amm builds for).
fn signal_name(s: i32) -> Option<&'static str> {
    Some(match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// The last lines the child wrote on stderr (the dynamic loader's complaint, a panic), if any.
fn said(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.len() > 400 {
        let mut cut = tail.len() - 400;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    format!("; it printed: {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_signals_or_exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(how(ExitStatus::from_raw(11)), "signal 11, SIGSEGV");
        assert_eq!(how(ExitStatus::from_raw(4)), "signal 4, SIGILL");
        assert_eq!(how(ExitStatus::from_raw(127 << 8)), "exit code 127");
        assert_eq!(said(""), "");
        assert_eq!(said("a\n\nb\nc\nInconsistency detected by ld.so: x\n"), "; it printed: b | c | Inconsistency detected by ld.so: x");
        assert!(said(&"é".repeat(1000)).chars().count() < 420);
    }

    /// A probe command that is not amm: `sh -c SCRIPT` stands in for a child that dies in each
    /// way, so the bookkeeping (who is blamed, who is probed again) is tested without a plugin.
    fn sh(script: &str) -> ProbeCommand {
        // `sh -c SCRIPT NAME --host-build ID -- FILE...`: $1 = --host-build, $2 = ID, $3 = --, $4... the files.
        ProbeCommand::new("/bin/sh", &["-c", script, "probe"])
    }

    /// A shell command printing one protocol line; `$i` stands for the shell variable.
    fn say(v: &str) -> String {
        format!("echo '{MARK}{}'", v.replace("$i", "'\"$i\"'"))
    }

    #[test]
    fn the_file_announced_last_is_blamed_and_the_rest_probed_again() {
        let files: Vec<PathBuf> = ["/a/liba.so", "/b/libbad.so", "/c/libc.so"].iter().map(PathBuf::from).collect();
        // Reports `ok` for every file until it meets libbad.so, then kills itself with SIGSEGV.
        let script = format!(
            "ulimit -c 0; shift 3; i=0; for f in \"$@\"; do {}; case $f in *bad*) {}; kill -SEGV $$;; esac; {}; i=$((i+1)); done",
            say(r#"{"event":"start","file":$i}"#),
            say(r#"{"event":"stage","file":$i,"stage":"in amm_plugin_descriptor"}"#),
            say(r#"{"event":"ok","file":$i}"#),
        );
        let r = probe(&sh(&script), &files);
        assert!(r[0].is_ok() && r[2].is_ok(), "{r:?}");
        let e = format!("{:#}", r[1].as_ref().unwrap_err());
        assert!(e.contains("plugin /b/libbad.so crashed while loading (signal 11, SIGSEGV, in amm_plugin_descriptor)"), "{e}");
        assert!(e.contains("cargo build --release -p amm"), "{e}");
    }

    #[test]
    fn a_child_that_cannot_start_or_runs_another_build_fails_every_file() {
        let files = vec![PathBuf::from("/x/libx.so"), PathBuf::from("/y/liby.so")];
        let r = probe(&ProbeCommand::new("/nonexistent/amm", &[]), &files);
        for (x, f) in r.iter().zip(&files) {
            let e = format!("{:#}", x.as_ref().unwrap_err());
            assert!(e.contains(&f.display().to_string()) && e.contains("could not start the plugin probe"), "{e}");
        }
        let r = probe(&sh(&format!("{}; exit 1", say(r#"{"event":"wrong-build","error":"other build"}"#))), &files);
        assert!(r.iter().all(|x| format!("{:#}", x.as_ref().unwrap_err()).contains("other build")), "{r:?}");
        let r = probe(&sh("echo boom >&2; exit 3"), &files);
        let e = format!("{:#}", r[1].as_ref().unwrap_err());
        assert!(e.contains("failed before opening any plugin (exit code 3); it printed: boom"), "{e}");
    }

    #[test]
    fn a_child_dying_after_its_reports_is_split_into_one_child_per_file() {
        let files: Vec<PathBuf> = ["/a/liba.so", "/b/libdtor.so"].iter().map(PathBuf::from).collect();
        // Reports `ok` for every file, then dies at "exit" if libdtor.so was among them.
        let script = format!(
            "ulimit -c 0; shift 3; i=0; bad=0; for f in \"$@\"; do {}; {}; case $f in *dtor*) bad=1;; esac; i=$((i+1)); done; \
             [ $bad = 1 ] && kill -ABRT $$; exit 0",
            say(r#"{"event":"start","file":$i}"#),
            say(r#"{"event":"ok","file":$i}"#),
        );
        let r = probe(&sh(&script), &files);
        assert!(r[0].is_ok(), "{r:?}");
        let e = format!("{:#}", r[1].as_ref().unwrap_err());
        assert!(e.contains("libdtor.so crashed while loading (signal 6, SIGABRT, after loading"), "{e}");
    }
}
