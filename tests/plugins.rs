//! Plugins end to end (docs/PLUGINS.md): build amm and the example plugins with
//! `cargo build -p amm -p <crate> ...`, load them through the CLI (`--plugin`, `--plugin-dir`,
//! `./plugins`, `$AMM_PLUGIN_PATH`), list, train and gradcheck with each; refuse a stale plugin,
//! random bytes and shared libraries that are not plugins; and check that every plugin shares
//! amm's one copy of candle (the loader proves it at load time; `plugins list` shows the proof).
//!
//! Plugins must be built by the same rustc against the SAME libamm_core.so as the amm that loads
//! them. A Rust dylib has no hash in its file name, so builds that differ (dependency features,
//! or the profile: `cargo test --workspace` builds workspace members with the `test` profile)
//! overwrite each other's libamm_core.so. These tests therefore build amm and the plugins together,
//! in one `cargo build` into their own target directory (`<target>/plugin-tests`), and run THAT
//! amm: nothing the surrounding `cargo test` built is touched.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The example plugins: (crate, library file name).
const EXAMPLES: [(&str, &str); 3] = [("tanh-mlp", "libtanh_mlp.so"), ("swish-net", "libswish_net.so"), ("linesearch", "liblinesearch.so")];
const MISMATCH: (&str, &str) = ("amm-test-mismatch", "libamm_test_mismatch.so");

/// Builds amm and every plugin crate once per test process, like docs/PLUGINS.md says
/// (`cargo build [--release] -p amm -p tanh-mlp -p ...`), with the profile of the surrounding
/// `cargo test`, into `<its target dir>/plugin-tests`. Returns the profile directory there.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let outer = Path::new(AMM).parent().expect("amm lives in a directory");
        let profile = outer.file_name().and_then(|n| n.to_str()).expect("a profile directory").to_string();
        // A target directory of its own: `cargo test --workspace` builds amm-core with the `test`
        // profile, `cargo build` with `dev`, and both would write the same libamm_core.so (a Rust
        // dylib has no hash in its file name), breaking the other test binaries linked to it.
        let target_dir = outer.parent().expect("a target directory").join("plugin-tests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo()).arg("build").arg("--target-dir").arg(&target_dir).args(["-p", "amm"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        for (krate, _) in EXAMPLES.iter().chain([&MISMATCH]) {
            cmd.args(["-p", krate]);
        }
        if cfg!(feature = "cuda") {
            cmd.args(["--features", "amm/cuda"]);
        }
        let t0 = std::time::Instant::now();
        let o = cmd.output().expect("running cargo");
        assert!(o.status.success(), "building amm and the plugins failed:\n{}", String::from_utf8_lossy(&o.stderr));
        eprintln!("built amm and the plugins in {:.1} s", t0.elapsed().as_secs_f64());
        let dir = target_dir.join(&profile);
        for name in ["amm", "libamm_core.so"].into_iter().chain(EXAMPLES.iter().chain([&MISMATCH]).map(|(_, l)| *l)) {
            assert!(dir.join(name).is_file(), "{} was not built", dir.join(name).display());
        }
        dir
    })
}

/// The amm built with the plugins.
fn amm_exe() -> PathBuf {
    built().join("amm")
}

fn lib(name: &str) -> String {
    path_str(&built().join(name))
}

/// A fresh directory holding copies of the example plugins (and nothing else).
fn plugin_dir() -> tempfile::TempDir {
    let d = tempdir();
    for (_, l) in EXAMPLES {
        std::fs::copy(built().join(l), d.path().join(l)).unwrap();
    }
    d
}

/// `exe args...` in `cwd`, without LD_LIBRARY_PATH (cargo sets it for tests, to the libraries of
/// ITS build): the binary's own rpath must find its libamm_core.so and libstd.
fn run_exe<S: AsRef<str>>(exe: &Path, cwd: &Path, args: &[S], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(exe);
    c.current_dir(cwd).args(args.iter().map(|a| a.as_ref()));
    c.env_remove("LD_LIBRARY_PATH").env_remove("AMM_PLUGIN_PATH").env_remove("RUST_BACKTRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("running amm");
    Run {
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `amm args...` (the amm built with the plugins).
fn amm_p<S: AsRef<str>>(cwd: &Path, args: &[S]) -> Run {
    run_exe(&amm_exe(), cwd, args, &[])
}

fn canonical(p: &str) -> String {
    path_str(&std::fs::canonicalize(p).unwrap())
}

#[test]
fn plugins_list_json_names_every_item_with_its_file_and_version() {
    let cwd = tempdir();
    let mut args = vec!["plugins".to_string(), "list".into(), "--json".into()];
    for (_, l) in EXAMPLES {
        args.extend(["--plugin".to_string(), lib(l)]);
    }
    let r = amm_p(cwd.path(), &args);
    r.ok();
    let items = r.json();
    let items = items.as_array().expect("an array");
    let got: Vec<(String, String, String)> = items
        .iter()
        .map(|i| {
            assert_eq!(i["amm_version"], env!("CARGO_PKG_VERSION"), "{i}");
            (i["name"].as_str().unwrap().into(), i["kind"].as_str().unwrap().into(), i["file"].as_str().unwrap().into())
        })
        .collect();
    let want = [
        ("tanhmlp", "model", "libtanh_mlp.so"),
        ("swishnet", "model", "libswish_net.so"),
        ("linesearch", "proxy", "liblinesearch.so"),
        ("correct", "aggregation", "liblinesearch.so"),
        ("sqhinge", "shrinkage", "liblinesearch.so"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((n, k, f), (wn, wk, wf)) in got.iter().zip(want) {
        assert_eq!((n.as_str(), k.as_str()), (wn, wk));
        assert_eq!(f, &canonical(&lib(wf)));
    }

    // The text form: file, versions, items.
    let r = amm_p(cwd.path(), &["plugins", "list", "--plugin", &lib("liblinesearch.so")]);
    r.ok().stdout_has("plugin linesearch 0.1.0").stdout_has(&canonical(&lib("liblinesearch.so"))).stdout_has("sqhinge(gamma=1, clip=50)");
    r.stdout_has(&format!("built against amm {}", env!("CARGO_PKG_VERSION")));
    // The loader proved at load time that the plugin shares amm's candle.
    r.stdout_has("one copy of candle: tensor ids amm/plugin/amm").stdout_has("gradients through its code match");
    // Without LD_LIBRARY_PATH, the binary found the libamm_core.so next to it.
    r.stdout_has(&format!("libamm_core  {}", path_str(&std::fs::canonicalize(built().to_path_buf().join("libamm_core.so")).unwrap())));

    // `amm list` shows plugin items with their origin, like built-ins.
    let pd = plugin_dir();
    let r = amm_p(cwd.path(), &["list", "--json", "--plugin-dir", &path_str(pd.path())]);
    let all = r.ok().json();
    let tanh = all.as_array().unwrap().iter().find(|e| e["name"] == "tanhmlp").expect("tanhmlp listed");
    assert_eq!(tanh["origin"].as_str().unwrap(), canonical(&path_str(&pd.path().join("libtanh_mlp.so"))));
    assert!(all.as_array().unwrap().iter().any(|e| e["name"] == "mlp" && e["origin"] == "built-in"));
}

/// One epoch with each plugin item, on the embedded digits.
#[test]
fn train_one_epoch_with_each_plugin() {
    let pd = plugin_dir();
    let cwd = tempdir();
    let cases = [
        ("tanhmlp(width=32)", "deepfool(l2, 2) |> avg |> exp |> weight(0.1)"),
        ("swishnet(widths=[32])", "deepfool(l2, 2) |> min |> exp |> weight(0.1)"),
        ("mlp(widths=[32])", "linesearch(iters=3) |> avg |> sqhinge(gamma=1) |> weight(0.1)"),
        ("tanhmlp(width=16, depth=1)", "linesearch(iters=2) |> correct |> exp |> weight(0.1)"),
    ];
    for (k, (model, reg)) in cases.iter().enumerate() {
        let out = cwd.path().join(format!("run{k}"));
        let args = [
            "train",
            "--plugin-dir",
            &path_str(pd.path()),
            "--model",
            model,
            "--reg",
            reg,
            "--data",
            "digits",
            "--train-size",
            "200",
            "--set",
            "data.test_size=100",
            "--set",
            "eval.long_iters=0",
            "--epochs",
            "1",
            "--quiet",
            "--json",
            "--out",
            &path_str(&out),
        ];
        let r = amm_p(cwd.path(), &args);
        let v = r.ok().json();
        let v = if let Some(a) = v.as_array() { a[0].clone() } else { v };
        assert_eq!(v["epochs"], 1, "{}", r.describe());
        assert!(v["model"].as_str().unwrap().starts_with(model.split('(').next().unwrap()), "{}", r.describe());
        let err = num(&v, "test_error");
        assert!((0.0..=1.0).contains(&err), "{}", r.describe());
        assert!(v["reg"].as_str().unwrap().contains(reg.split('(').next().unwrap().split(' ').next().unwrap()), "{}", r.describe());
    }
}

/// `amm gradcheck` passes for every plugin model and for the plugin proxy, with second-order
/// terms present (the autograd-fallback model included: the start-up check saw them).
#[test]
fn gradcheck_each_plugin() {
    let pd = plugin_dir();
    let cwd = tempdir();
    let cases = [
        ("tanhmlp(width=16, depth=3)", "deepfool(l2, 3) |> avg |> exp(c=2, d=1) |> weight(1)"),
        ("swishnet(widths=[16, 16])", "deepfool(l2, 3) |> avg |> exp(c=2, d=1) |> weight(1)"),
        ("tanhmlp(width=16)", "linesearch(iters=3) |> avg |> exp(c=2, d=1) |> weight(1)"),
        ("swishnet(widths=[16])", "linesearch(iters=3) |> correct |> sqhinge |> weight(1)"),
        ("mlp(widths=[16])", "linesearch(iters=2) |> min |> exp |> weight(1)"),
    ];
    for (model, reg) in cases {
        let r = amm_p(cwd.path(), &["gradcheck", "--plugin-dir", &path_str(pd.path()), "--model", model, "--reg", reg, "--json"]);
        let v = r.ok().json();
        assert_eq!(v["ok"], true, "{}", r.describe());
        assert!(num(&v, "checked") > 0.0, "{}", r.describe());
        assert!(num(&v, "max_rel_err") < 1e-4, "{}", r.describe());
        assert!(num(&v, "hog_rel_diff") > 1e-8, "second-order terms missing\n{}", r.describe());
    }
}

#[test]
fn a_plugin_built_against_another_amm_is_refused_before_registration() {
    let cwd = tempdir();
    let file = lib(MISMATCH.1);
    let r = amm_p(cwd.path(), &["plugins", "list", "--plugin", &file]);
    r.fails();
    r.stderr_has(&canonical(&file)).stderr_has("refused");
    r.stderr_has(&format!("host:   amm {} built by rustc ", env!("CARGO_PKG_VERSION")));
    r.stderr_has("plugin: amm-test-mismatch 0.1.0 built against amm 0.0.9 by rustc 1.70.0");
    r.stderr_has("cargo build --release -p amm -p amm-test-mismatch");
    assert!(!r.stderr.contains("amm_plugin_register was called"), "{}", r.describe());
    // In a --plugin-dir, a refused plugin is an error too (unlike a file that is no plugin).
    let d = tempdir();
    std::fs::copy(&file, d.path().join(MISMATCH.1)).unwrap();
    amm_p(cwd.path(), &["list", "--plugin-dir", &path_str(d.path())]).fails().stderr_has("refused");
    // Every command loads plugins first: train refuses it before doing anything.
    amm_p(cwd.path(), &["train", "--plugin", &file, "--data", "digits", "--model", "tanhmlp"]).fails().stderr_has("amm 0.0.9");
}

#[test]
fn files_that_are_not_plugins_are_refused_by_name() {
    let d = tempdir();
    let cwd = tempdir();
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let mut rng = Mix(42);
    let random: Vec<u8> = (0..20_000).map(|_| rng.next() as u8).collect();
    let p = d.path().join("librandom.so");
    std::fs::write(&p, &random).unwrap();
    cases.push((p, "no ELF header"));
    let p = d.path().join("libempty.so");
    std::fs::write(&p, b"").unwrap();
    cases.push((p, "too short"));
    let p = d.path().join("libtext.so");
    std::fs::write(&p, "this is not a library\n".repeat(10)).unwrap();
    cases.push((p, "no ELF header"));
    // A real plugin cut short: the ELF header points past the end of the file.
    let whole = std::fs::read(built().join("libtanh_mlp.so")).unwrap();
    let p = d.path().join("libtruncated.so");
    std::fs::write(&p, &whole[..whole.len() / 3]).unwrap();
    cases.push((p, "refused"));
    // A plugin with its ELF header intact and the rest overwritten with random bytes.
    let mut corrupt = whole.clone();
    for (i, b) in corrupt.iter_mut().enumerate().skip(64) {
        *b = random[i % random.len()];
    }
    let p = d.path().join("libcorrupt.so");
    std::fs::write(&p, &corrupt).unwrap();
    cases.push((p, "refused"));
    // Real shared libraries that are not plugins, and an executable.
    for sys in ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"] {
        if Path::new(sys).exists() {
            cases.push((PathBuf::from(sys), "not an amm plugin"));
        }
    }
    cases.push((built().to_path_buf().join("libamm_core.so"), "not an amm plugin"));
    cases.push((amm_exe(), "not an amm plugin"));
    cases.push((d.path().join("libmissing.so"), "cannot open"));
    for (file, why) in &cases {
        let r = amm_p(cwd.path(), &["plugins", "list", "--plugin", &path_str(file)]);
        r.fails().stderr_has(why);
        let name = file.file_name().unwrap().to_str().unwrap();
        r.stderr_has(name);
    }
    // In a --plugin-dir, files that are not plugins are skipped with a warning; the plugins there load.
    let pd = plugin_dir();
    std::fs::write(pd.path().join("libjunk.so"), &random).unwrap();
    std::fs::write(pd.path().join("notes.txt"), "not scanned").unwrap();
    let r = amm_p(cwd.path(), &["plugins", "list", "--json", "--plugin-dir", &path_str(pd.path())]);
    r.ok().stderr_has("warning: skipping").stderr_has("libjunk.so");
    assert_eq!(r.json().as_array().unwrap().len(), 5, "{}", r.describe());
    // `--plugin-dir target/<profile>` works: amm's own libamm_core.so there is not a plugin.
    let r = amm_p(cwd.path(), &["plugins", "list", "--json", "--plugin", &lib("libtanh_mlp.so"), "--plugin-dir", &path_str(built())]);
    r.fails().stderr_has("libamm_test_mismatch.so"); // the stale test plugin lives there too
    amm_p(cwd.path(), &["plugins", "list", "--plugin-dir", &path_str(&d.path().join("nope"))]).fails().stderr_has("not a directory");
}

/// `./plugins` (files directly in it) and `$AMM_PLUGIN_PATH` are searched by default; failures
/// there are warnings, not errors.
#[test]
fn default_plugin_directories() {
    let cwd = tempdir();
    let local = cwd.path().join("plugins");
    std::fs::create_dir_all(local.join("tanh-mlp/src")).unwrap();
    std::fs::copy(built().join("libtanh_mlp.so"), local.join("libtanh_mlp.so")).unwrap();
    // Crate sources and nested libraries are not scanned.
    std::fs::copy(built().join("libswish_net.so"), local.join("tanh-mlp/libswish_net.so")).unwrap();
    let env_a = tempdir();
    let env_b = tempdir();
    std::fs::copy(built().join("liblinesearch.so"), env_b.path().join("liblinesearch.so")).unwrap();
    std::fs::copy(built().join(MISMATCH.1), env_a.path().join(MISMATCH.1)).unwrap();
    let path = format!("{}:{}", path_str(env_a.path()), path_str(env_b.path()));
    let r = run_exe(&amm_exe(), cwd.path(), &["plugins", "list", "--json"], &[("AMM_PLUGIN_PATH", &path)]);
    r.ok().stderr_has("warning: skipping").stderr_has("amm 0.0.9");
    let names: Vec<String> = r.json().as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["tanhmlp", "linesearch", "correct", "sqhinge"], "{}", r.describe());
    // The same file named twice loads once.
    let r = amm_p(cwd.path(), &["plugins", "list", "--json", "--plugin", "plugins/libtanh_mlp.so", "--plugin", &lib("libtanh_mlp.so")]);
    r.fails().stderr_has("already registered"); // two different files with the same item: a clash
    let r = amm_p(cwd.path(), &["plugins", "list", "--json", "--plugin", "plugins/libtanh_mlp.so"]);
    assert_eq!(r.ok().json().as_array().unwrap().len(), 1, "{}", r.describe());
}

/// A copy of `amm` outside target/ (what `cargo install --path .` makes) runs: its rpath names
/// the absolute build directory. After `amm plugins bundle` it runs on the libraries copied to
/// `<bin>/../lib/amm`, and loads plugins.
#[test]
fn installed_copy_runs_and_bundles_its_libraries() {
    let root = tempdir();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("amm");
    std::fs::copy(amm_exe(), &exe).unwrap();
    let cwd = tempdir();
    let bare = |args: &[&str]| run_exe(&exe, cwd.path(), args, &[]);
    let r = bare(&["plugins", "list"]);
    r.ok().stdout_has(&format!("libamm_core  {}", path_str(&std::fs::canonicalize(built().to_path_buf().join("libamm_core.so")).unwrap())));
    bare(&["plugins", "bundle"]).ok().stdout_has("copied");
    let libdir = root.path().join("lib/amm");
    assert!(libdir.join("libamm_core.so").is_file());
    assert!(std::fs::read_dir(&libdir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("libstd-")));
    let r = bare(&["plugins", "list", "--plugin", &lib("libtanh_mlp.so")]);
    r.ok().stdout_has(&format!("libamm_core  {}", path_str(&libdir.join("libamm_core.so")))).stdout_has("tanhmlp");
    r.stdout_has(&format!("libstd-      {}", path_str(&libdir)));
    bare(&["gradcheck", "--plugin", &lib("libtanh_mlp.so"), "--model", "tanhmlp(width=8)"]).ok();
}
