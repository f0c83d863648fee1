//! Plugins end to end (docs/PLUGINS.md): build amm and the example plugins with
//! `cargo build -p amm -p <crate> ...`, load them through the CLI (`--plugin`, `--plugin-dir`,
//! `./plugins`, `$AMM_PLUGIN_PATH`), list, train and gradcheck with each; refuse a stale plugin,
//! random bytes and shared libraries that are not plugins, and damaged plugins that crash the
//! process opening them (amm tries every plugin in a child process first: it must never be killed);
//! and check that every plugin shares amm's one copy of candle (the loader proves it at load time;
//! `plugins list` shows the proof).
//!
//! Plugins must be built by the same rustc against the SAME libamm_core.so as the amm that loads
//! them. A Rust dylib has no hash in its file name, so a build with other dependency features
//! overwrites the libamm_core.so every test binary of amm-core loads. These tests therefore build
//! the plugins with the selection `cargo test --workspace` itself builds (`--workspace --lib --bins
//! --tests --examples`: the same features, dev-dependencies included), in the same target
//! directory: everything but the plugins' own libraries is already fresh, nothing is rebuilt or
//! overwritten, and no second copy of candle is compiled.
mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;

/// The example plugins: (crate, library file name).
const EXAMPLES: [(&str, &str); 3] = [("tanh-mlp", "libtanh_mlp.so"), ("swish-net", "libswish_net.so"), ("linesearch", "liblinesearch.so")];
/// The test plugin that claims another amm: an example target of its crate (so that
/// `cargo build --workspace` leaves it out of target/<profile>), built into `examples/`.
const MISMATCH: (&str, &str) = ("amm-test-mismatch", "libamm_test_mismatch.so");
const MISMATCH_EXAMPLE: &str = "amm_test_mismatch";

/// Builds the plugin crates once per test process, like docs/PLUGINS.md says (`cargo build
/// [--release]`), next to the amm this `cargo test` built, with its profile and its selection of
/// the workspace (see the top of this file), the test plugin included. Returns the profile
/// directory.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(AMM).parent().expect("amm lives in a directory").to_path_buf();
        let profile = dir.file_name().and_then(|n| n.to_str()).expect("a profile directory").to_string();
        let target_dir = dir.parent().expect("a target directory");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo()).arg("build").arg("--target-dir").arg(target_dir);
        cmd.args(["--workspace", "--lib", "--bins", "--tests", "--examples"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        if cfg!(feature = "cuda") {
            cmd.args(["--features", "amm/cuda"]);
        }
        let t0 = std::time::Instant::now();
        let o = cmd.output().expect("running cargo");
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "building the plugins failed:\n{log}");
        // Anything of amm's rebuilt here would replace the libamm_core.so that the test binaries
        // still to run load: say which selection differed rather than fail later and elsewhere.
        for krate in ["amm-core", "candle-core", "candle-nn"] {
            assert!(
                !log.contains(&format!("Compiling {krate} v")),
                "building the plugins rebuilt {krate}: this `cargo test` selected other packages or \
                 features than `cargo build --workspace --lib --bins --tests --examples`; run the \
                 plugin tests with `cargo test --workspace`\n{log}"
            );
        }
        eprintln!("built the plugins in {:.1} s", t0.elapsed().as_secs_f64());
        for name in ["amm", "libamm_core.so"].into_iter().chain(EXAMPLES.iter().map(|(_, l)| *l)) {
            assert!(dir.join(name).is_file(), "{} was not built", dir.join(name).display());
        }
        assert!(dir.join("examples").join(MISMATCH.1).is_file(), "the test plugin was not built");
        // Builds from before the test plugin became an example left it in the profile directory,
        // which `--plugin-dir <profile dir>` below must find free of it, like a fresh build.
        std::fs::remove_file(dir.join(MISMATCH.1)).ok();
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

/// The test plugin that claims another amm.
fn mismatch() -> String {
    path_str(&built().join("examples").join(MISMATCH.1))
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
    run_exe_status(exe, cwd, args, env).1
}

/// [`run_exe`], with how the process ended.
fn run_exe_status<S: AsRef<str>>(exe: &Path, cwd: &Path, args: &[S], env: &[(&str, &str)]) -> (ExitStatus, Run) {
    let mut c = Command::new(exe);
    c.current_dir(cwd).args(args.iter().map(|a| a.as_ref()));
    c.env_remove("LD_LIBRARY_PATH").env_remove("AMM_PLUGIN_PATH").env_remove("RUST_BACKTRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("running amm");
    let run = Run {
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    (o.status, run)
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
        ("linesearch", "attack", "liblinesearch.so"),
        ("warmup", "schedule", "liblinesearch.so"),
        ("smoothce", "loss", "liblinesearch.so"),
        ("signsgd", "optimizer", "liblinesearch.so"),
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

/// A plugin's attack goes where the built-in ones go: `eval.attacks` of a run, beside a built-in
/// attack, and `amm eval --attacks`, with the same located errors.
#[test]
fn a_plugin_attack_evaluates_runs() {
    let pd = plugin_dir();
    let cwd = tempdir();
    let out = cwd.path().join("run");
    let pdir = path_str(pd.path());
    let mut args: Vec<String> = ["train", "--plugin-dir", &pdir, "--data", "digits", "--train-size", "300", "--epochs", "2", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for set in ["data.test_size=60", "eval.long_iters=0", "eval.attacks=\"linesearch(iters=10), deepfool\""] {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    args.extend(["--out".to_string(), path_str(&out)]);
    let r = amm_p(cwd.path(), &args);
    r.ok();
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("result.json")).unwrap()).unwrap();
    let attacks = &result["robust"]["attacks"];
    for label in ["linesearch(iters=10)", "deepfool"] {
        let a = &attacks[label];
        assert!(a.is_object(), "{label} missing from robust.attacks: {result}");
        // a minimal-norm attack on a trained model: most samples flipped, at a positive median norm
        let median = a["median_norm"].as_f64().unwrap_or_else(|| panic!("{label}: {a}"));
        assert!(median > 0.0 && median.is_finite(), "{label}: {a}");
    }
    // DeepFool with 50 steps and the line search find boundaries of the same size (both are
    // upper bounds on the same distance: within a factor of 3 of each other)
    let (ls, df) = (attacks["linesearch(iters=10)"]["median_norm"].as_f64().unwrap(), attacks["deepfool"]["median_norm"].as_f64().unwrap());
    assert!(ls < 3.0 * df && df < 3.0 * ls, "line search {ls}, deepfool {df}");

    let r = amm_p(cwd.path(), &["eval", &path_str(&out), "--plugin-dir", &pdir, "--attacks", "linesearch", "--samples", "30", "--json"]);
    r.ok().stdout_has("linesearch");
    let r = amm_p(cwd.path(), &["eval", &path_str(&out), "--plugin-dir", &pdir, "--attacks", "linesearch(itres=3)"]);
    r.fails().stderr_has("`linesearch` has no parameter `itres`").stderr_has("did you mean `iters`?");
    let r = amm_p(cwd.path(), &["eval", &path_str(&out), "--plugin-dir", &pdir, "--attacks", "linesearch", "--norm", "linf"]);
    r.fails().stderr_has("does not support the linf norm");
}

/// A plugin's schedule, loss and optimizer train like the built-in ones: the learning rate of
/// each epoch is the warm-up's, the smoothed loss of a model that predicts its labels is above
/// the plain cross-entropy's (smoothing keeps mass on the other classes), and signSGD moves
/// every weight by exactly the learning rate per step.
#[test]
fn a_plugin_schedule_loss_and_optimizer_train() {
    let pd = plugin_dir();
    let cwd = tempdir();
    let pdir = path_str(pd.path());
    let run = |name: &str, loss: &str| -> Vec<Vec<String>> {
        let out = cwd.path().join(name);
        let mut args: Vec<String> =
            ["train", "--plugin-dir", &pdir, "--data", "digits", "--train-size", "300", "--epochs", "3", "--lr", "0.05", "--quiet"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        for set in ["data.test_size=60", "eval.long_iters=0", "train.schedule=warmup(epochs=2)", &format!("train.loss={loss}")] {
            args.extend(["--set".to_string(), set.to_string()]);
        }
        args.extend(["--out".to_string(), path_str(&out)]);
        amm_p(cwd.path(), &args).ok();
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        csv.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
    };
    let smooth = run("smooth", "smoothce(eps=0.2)");
    let col = |rows: &[Vec<String>], name: &str| -> Vec<f64> {
        let i = rows[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {:?}", rows[0]));
        rows[1..].iter().map(|r| r[i].parse().unwrap()).collect()
    };
    let lr = col(&smooth, "lr");
    let want = [0.05 / 3.0, 0.05 * 2.0 / 3.0, 0.05];
    for (got, want) in lr.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "lr {lr:?}, want {want}");
    }
    let plain = run("plain", "ce");
    let (s, p) = (col(&smooth, "ce"), col(&plain, "ce"));
    assert!(s.iter().all(|v| v.is_finite() && *v > 0.0), "{s:?}");
    assert!(s[0] > p[0], "the smoothed loss {s:?} is above the cross-entropy {p:?} from the same start");
    let r = amm_p(cwd.path(), &["train", "--plugin-dir", &pdir, "--set", "train.loss=smoothce(eps=1.5)"]);
    r.fails().stderr_has("`eps` must be");

    // signSGD: one step (100 images, batch 100) at lr 0.001 and at lr 0.002 from the same start:
    // the weights differ by exactly 0.001·sign(g), so every weight with a gradient by 0.001.
    let one_step = |name: &str, lr: &str| {
        let out = cwd.path().join(name);
        let args = [
            "train",
            "--plugin-dir",
            &pdir,
            "--data",
            "digits",
            "--train-size",
            "100",
            "--batch",
            "100",
            "--epochs",
            "1",
            "--lr",
            lr,
            "--quiet",
            "--set",
            "train.optimizer=signsgd",
            "--set",
            "train.weight_decay=0",
            "--set",
            "data.test_size=20",
            "--set",
            "eval.long_iters=0",
            "--out",
            &path_str(&out),
        ];
        amm_p(cwd.path(), &args).ok();
        amm_core::candle_core::safetensors::load(out.join("checkpoint-last.safetensors"), &amm_core::candle_core::Device::Cpu).unwrap()
    };
    let (a, b) = (one_step("sign1", "0.001"), one_step("sign2", "0.002"));
    let (mut moved, mut total) = (0usize, 0usize);
    for (name, ta) in a.iter().filter(|(n, _)| !n.starts_with("opt.") && !n.starts_with("meta")) {
        let to = |t: &amm_core::candle_core::Tensor| {
            t.flatten_all().unwrap().to_dtype(amm_core::candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap()
        };
        let (va, vb) = (to(ta), to(&b[name]));
        for (x, y) in va.iter().zip(&vb) {
            let d = (x - y).abs();
            assert!(d < 1e-3 + 1e-6, "{name}: weights differ by {d}, more than one signSGD step of 0.001");
            moved += usize::from(d > 0.5e-3);
            total += 1;
        }
    }
    assert!(moved > total / 2, "{moved} of {total} weights moved by 0.001");
    let r = amm_p(cwd.path(), &["train", "--plugin-dir", &pdir, "--set", "train.optimizer=signsdg"]);
    r.fails().stderr_has("unknown optimizer `signsdg`").stderr_has("did you mean `signsgd`?");
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
    let file = mismatch();
    let r = amm_p(cwd.path(), &["plugins", "list", "--plugin", &file]);
    r.fails();
    r.stderr_has(&canonical(&file)).stderr_has("refused");
    r.stderr_has(&format!("host:   amm {} built by rustc ", env!("CARGO_PKG_VERSION")));
    r.stderr_has("plugin: amm-test-mismatch 0.1.0 built against amm 0.0.9 by rustc 1.70.0");
    r.stderr_has("cargo build --release -p amm -p amm-test-mismatch");
    assert!(!r.stderr.contains("amm_plugin_register was called"), "{}", r.describe());
    // In a --plugin-dir where nothing else loads, a refused plugin is an error too (unlike a file
    // that is no plugin at all)...
    let d = tempdir();
    std::fs::copy(&file, d.path().join(MISMATCH.1)).unwrap();
    let r = amm_p(cwd.path(), &["list", "--plugin-dir", &path_str(d.path())]);
    r.fails().stderr_has("refused").stderr_has(&format!("--plugin-dir {}: no plugin there could be loaded", path_str(d.path())));
    // ...and a warning when the directory's other plugins load.
    std::fs::copy(lib("libtanh_mlp.so"), d.path().join("libtanh_mlp.so")).unwrap();
    let r = amm_p(cwd.path(), &["plugins", "list", "--json", "--plugin-dir", &path_str(d.path())]);
    r.ok().stderr_has("warning: skipping").stderr_has(MISMATCH.1).stderr_has("amm 0.0.9");
    assert_eq!(r.json().as_array().unwrap().len(), 1, "{}", r.describe());
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
    assert_eq!(r.json().as_array().unwrap().len(), 9, "{}", r.describe());
    // `--plugin-dir target/<profile>` works: amm's own libamm_core.so there is not a plugin, and
    // the test plugin that claims another amm is not there (it is an example target).
    let r = amm_p(cwd.path(), &["plugins", "list", "--json", "--plugin", &lib("libtanh_mlp.so"), "--plugin-dir", &path_str(built())]);
    assert_eq!(r.ok().json().as_array().unwrap().len(), 9, "{}", r.describe());
    assert!(!r.stderr.contains("warning"), "{}", r.describe());
    amm_p(cwd.path(), &["plugins", "list", "--plugin-dir", &path_str(&d.path().join("nope"))]).fails().stderr_has("not a directory");
}

/// `cargo build --workspace` puts into target/<profile> only plugins amm loads, so that
/// `--plugin-dir target/release` works (docs/PLUGINS.md): the workspace's cdylib libraries are the
/// example plugins, and the test plugin that claims another amm is an example target, built only
/// on request.
#[test]
fn the_workspace_build_makes_no_test_plugin() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new(cargo).current_dir(repo()).args(["metadata", "--no-deps", "--format-version", "1"]).output().unwrap();
    assert!(o.status.success(), "cargo metadata failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (mut libraries, mut fixture) = (Vec::new(), false);
    for p in v["packages"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let has = |key: &str, what: &str| t[key].as_array().unwrap().iter().any(|k| k == what);
            if has("kind", "cdylib") {
                libraries.push(p["name"].as_str().unwrap().to_string());
            }
            fixture |= p["name"] == MISMATCH.0 && t["name"] == MISMATCH_EXAMPLE && has("kind", "example") && has("crate_types", "cdylib");
        }
    }
    libraries.sort();
    assert_eq!(libraries, ["linesearch", "swish-net", "tanh-mlp"]);
    assert!(fixture, "{} has no cdylib example {MISMATCH_EXAMPLE}", MISMATCH.0);
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
    std::fs::copy(mismatch(), env_a.path().join(MISMATCH.1)).unwrap();
    let path = format!("{}:{}", path_str(env_a.path()), path_str(env_b.path()));
    let r = run_exe(&amm_exe(), cwd.path(), &["plugins", "list", "--json"], &[("AMM_PLUGIN_PATH", &path)]);
    r.ok().stderr_has("warning: skipping").stderr_has("amm 0.0.9");
    let names: Vec<String> = r.json().as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["tanhmlp", "linesearch", "correct", "sqhinge", "linesearch", "warmup", "smoothce", "signsgd"], "{}", r.describe());
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

// ---------------------------------------------------------------------------------------------
// Damaged plugins: files that pass the ELF check but crash the process that opens them.

/// The section headers of a 64-bit little-endian ELF file: (name, type, address, offset, size, link).
fn elf_sections(elf: &[u8]) -> Vec<(String, u32, u64, u64, u64, u32)> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(40) as usize, u16_at(58), u16_at(60), u16_at(62));
    let raw: Vec<(u32, u32, u64, u64, u64, u32)> = (0..shnum)
        .map(|i| {
            let o = shoff + i * shentsize;
            (u32_at(o), u32_at(o + 4), u64_at(o + 16), u64_at(o + 24), u64_at(o + 32), u32_at(o + 40))
        })
        .collect();
    let names = raw[shstrndx].3 as usize;
    raw.iter().map(|&(n, t, a, o, s, l)| (c_string(elf, names + n as usize), t, a, o, s, l)).collect()
}

fn c_string(b: &[u8], at: usize) -> String {
    String::from_utf8_lossy(&b[at..at + b[at..].iter().position(|&c| c == 0).unwrap()]).into_owned()
}

/// The file offset of section `name`.
fn section_offset(elf: &[u8], name: &str) -> usize {
    elf_sections(elf).iter().find(|s| s.0 == name).unwrap_or_else(|| panic!("no section {name}")).3 as usize
}

/// The file offset of the code of the exported function `name`.
fn symbol_offset(elf: &[u8], name: &str) -> usize {
    let secs = elf_sections(elf);
    let dynsym = secs.iter().find(|s| s.1 == 11).expect("a dynamic symbol table");
    let strtab = secs[dynsym.5 as usize].3 as usize;
    let addr = (0..dynsym.4 as usize / 24)
        .map(|k| dynsym.3 as usize + 24 * k)
        .find(|&o| c_string(elf, strtab + u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize) == name)
        .map(|o| u64::from_le_bytes(elf[o + 8..o + 16].try_into().unwrap()))
        .unwrap_or_else(|| panic!("no symbol {name}"));
    // The section that holds the address (not .bss-like: type 8 has no bytes in the file).
    let s = secs.iter().find(|s| s.1 != 8 && s.2 <= addr && addr < s.2 + s.4).expect("the symbol's section");
    (s.3 + addr - s.2) as usize
}

/// `whole` with `len` pseudo-random bytes (seeded) written at each offset.
fn damage(whole: &[u8], offsets: &[usize], len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Mix(seed);
    let mut out = whole.to_vec();
    for &o in offsets {
        for b in &mut out[o..o + len] {
            *b = rng.next() as u8;
        }
    }
    out
}

/// Copies of the real plugin libtanh_mlp.so, each with a few hundred bytes overwritten in a place
/// the ELF check does not look at: (what, bytes). Each keeps its ELF header, section headers and
/// dynamic symbols, so it passes the check and reaches the dynamic loader or its own code.
fn damaged_plugins() -> Vec<(&'static str, Vec<u8>)> {
    let whole = std::fs::read(built().join("libtanh_mlp.so")).unwrap();
    let sym = |s: &str| symbol_offset(&whole, s);
    let sec = |s: &str| section_offset(&whole, s);
    let cases: Vec<(&str, Vec<usize>, usize)> = vec![
        ("descriptor", vec![sym("amm_plugin_descriptor")], 300),
        ("register", vec![sym("amm_plugin_register")], 300),
        ("candle-probe", vec![sym("amm_plugin_probe_tensor_id")], 300),
        ("init-code", vec![sec(".text")], 300),
        ("relocations", vec![sec(".rela.dyn")], 300),
        ("dynamic", vec![sec(".dynamic")], 300),
        ("scattered", vec![sec(".rela.dyn") + 96, sec(".dynamic") + 64, sym("amm_plugin_descriptor")], 100),
    ];
    cases.into_iter().enumerate().map(|(k, (what, at, len))| (what, damage(&whole, &at, len, 1000 + k as u64))).collect()
}

/// The libamm_core build of the amm under test (the probe subcommand wants it).
fn host_build(cwd: &Path) -> String {
    let r = amm_p(cwd, &["plugins", "list"]);
    let line = r.ok().stdout.lines().next().unwrap_or_default().to_string();
    line.split("libamm_core build ").nth(1).and_then(|s| s.strip_suffix(')')).unwrap_or_else(|| panic!("no build id in {line}")).to_string()
}

/// amm ended by itself (not by a signal, not by a panic) and named `file` on stderr.
#[track_caller]
fn ended_cleanly_naming(status: ExitStatus, r: &Run, file: &str) {
    assert_eq!(status.signal(), None, "amm was killed by a signal\n{}", r.describe());
    assert!(r.code.is_some() && r.code != Some(101), "{}", r.describe());
    r.no_panic().stderr_has(file);
}

/// A damaged plugin is tried in a child process first: amm itself is never killed, and refuses the
/// file by name, through `--plugin` (error), a `--plugin-dir` holding only it (error: nothing there
/// loads) and `$AMM_PLUGIN_PATH` (skipped with a warning, like anything failing there).
#[test]
fn a_damaged_plugin_is_refused_by_name_and_never_kills_amm() {
    let cwd = tempdir();
    let id = host_build(cwd.path());
    let mut killed = Vec::new();
    for (what, bytes) in damaged_plugins() {
        let d = tempdir();
        let file = d.path().join(format!("libdamaged_{}.so", what.replace('-', "_")));
        std::fs::write(&file, &bytes).unwrap();
        let shown = canonical(&path_str(&file));
        // What the file does to a process that opens it: the probe subcommand opens it in-process.
        let (st, p) = run_exe_status(&amm_exe(), cwd.path(), &["plugins", "probe", "--host-build", &id, "--", &shown], &[]);
        let expect = match (st.signal(), st.code()) {
            (Some(s), _) => {
                killed.push(what);
                format!("{shown} crashed while loading (signal {s}")
            }
            (None, Some(0)) => {
                assert!(p.stdout.contains(r#""event":"refused""#), "{what}: the damaged plugin loaded\n{}", p.describe());
                format!("plugin {shown}")
            }
            (None, Some(c)) => format!("{shown} ended the process while loading (exit code {c}"),
            (None, None) => unreachable!(),
        };
        let crashed = expect.contains("while loading (");

        let (st, r) = run_exe_status(&amm_exe(), cwd.path(), &["list", "--plugin", &shown], &[]);
        ended_cleanly_naming(st, &r, &shown);
        r.fails().stderr_has(&expect);
        if crashed {
            r.stderr_has("the file is damaged or not built for this amm").stderr_has("cargo build --release -p amm -p");
        }

        let (st, r) = run_exe_status(&amm_exe(), cwd.path(), &["list", "--plugin-dir", &path_str(d.path())], &[]);
        ended_cleanly_naming(st, &r, &shown);
        if crashed {
            r.fails().stderr_has(&expect).stderr_has("no plugin there could be loaded");
        } else if r.code == Some(0) {
            // Refused as "not an amm plugin" (a descriptor with a damaged magic number): skipped.
            r.stderr_has("warning: skipping");
        } else {
            r.fails();
        }

        let (st, r) = run_exe_status(&amm_exe(), cwd.path(), &["list"], &[("AMM_PLUGIN_PATH", &path_str(d.path()))]);
        ended_cleanly_naming(st, &r, &shown);
        r.ok().stderr_has(&format!("warning: skipping {shown} (found in ")).stderr_has(&expect).stdout_has("mlp(");
    }
    // Without the probe, these would have killed amm: make sure the test keeps exercising that.
    assert!(killed.len() >= 3, "only {killed:?} of the damaged plugins crash a process that opens them");
}

/// A directory of good plugins, a damaged one, a stale one and junk: the good ones load and are
/// listed, and every other file is reported, each with its own warning.
#[test]
fn a_directory_with_good_and_bad_plugins_loads_the_good_ones_and_reports_the_rest() {
    let cwd = tempdir();
    let (_, descriptor) = damaged_plugins().into_iter().find(|(w, _)| *w == "descriptor").unwrap();
    let pd = plugin_dir();
    let bad = pd.path().join("libdamaged.so");
    std::fs::write(&bad, &descriptor).unwrap();
    std::fs::copy(mismatch(), pd.path().join(MISMATCH.1)).unwrap();
    std::fs::write(pd.path().join("libjunk.so"), b"not a library at all").unwrap();
    let dir = path_str(pd.path());
    let bad = canonical(&path_str(&bad));

    let (st, r) = run_exe_status(&amm_exe(), cwd.path(), &["plugins", "list", "--json", "--plugin-dir", &dir], &[]);
    ended_cleanly_naming(st, &r, &bad);
    let names: Vec<String> = r.ok().json().as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        names,
        ["linesearch", "correct", "sqhinge", "linesearch", "warmup", "smoothce", "signsgd", "swishnet", "tanhmlp"],
        "{}",
        r.describe()
    );
    r.stderr_has(&format!("warning: skipping {bad} (found in {dir}): plugin {bad} crashed while loading (signal"));
    r.stderr_has(&format!("{}/{} (found in {dir}): plugin", dir, MISMATCH.1)).stderr_has("amm 0.0.9");
    r.stderr_has(&format!("{dir}/libjunk.so (found in {dir})"));
    assert_eq!(r.stderr.matches("warning: skipping").count(), 3, "{}", r.describe());

    let (st, r) = run_exe_status(&amm_exe(), cwd.path(), &["list", "--plugin-dir", &dir], &[]);
    ended_cleanly_naming(st, &r, &bad);
    r.ok().stdout_has("tanhmlp(").stdout_has("linesearch(").stderr_has("crashed while loading");

    // Named with --plugin, each bad file is an error, and every one of them is reported.
    let stale = canonical(&format!("{dir}/{}", MISMATCH.1));
    let (st, r) =
        run_exe_status(&amm_exe(), cwd.path(), &["list", "--plugin", &bad, "--plugin", &stale, "--plugin", &lib("libtanh_mlp.so")], &[]);
    ended_cleanly_naming(st, &r, &bad);
    r.fails().stderr_has(&stale).stderr_has("amm 0.0.9");
    assert_eq!(r.stderr.matches("error: ").count(), 2, "{}", r.describe());
}
