//! `amm bench`: the JSON it prints, CE and AMM steps of an MLP and a CNN (the CPU kernels), and
//! bad arguments. Only that the timings exist and are consistent, never how fast they are.
mod common;
use common::*;

fn bench(args: &[&str]) -> Run {
    amm(&repo(), &with(&["bench", "--steps", "2", "--warmup", "1", "--json"], args))
}

#[test]
fn prints_both_steps_and_their_ratio() {
    for args in [
        vec!["--model", "mlp(widths=[32])", "--batch", "8", "--input", "1x8x8"],
        vec!["--model", "lenet", "--batch", "4", "--input", "1x16x16", "--reg", "deepfool(l2, 2) |> avg |> lin |> weight(1)"],
    ] {
        let r = bench(&args);
        r.ok();
        let v = r.json();
        let (ce, am) = (num(&v, "ce_step_ms"), num(&v, "amm_step_ms"));
        assert!(ce > 0.0 && am > 0.0, "{}", r.describe());
        assert!((num(&v, "ratio") - am / ce).abs() < 1e-9 * (am / ce), "{}", r.describe());
        assert!(num(&v, "peak_rss_mib") > 0.0 && num(&v, "vjp_rows_per_step") > 0.0, "{}", r.describe());
    }
    // --only ce leaves the AMM side empty.
    let r = bench(&["--model", "mlp(widths=[16])", "--batch", "4", "--input", "1x8x8", "--only", "ce"]);
    r.ok();
    assert!(r.json()["amm_step_ms"].is_null(), "{}", r.describe());
}

/// AVG runs in chunks (`--chunk N`, reported as `reg_chunk`); `--chunk 0` and MIN keep one graph,
/// and a batch that fits one chunk is not split.
#[test]
fn reports_the_regularizer_chunk() {
    let avg = "deepfool(l2, 2) |> avg |> lin |> weight(1)";
    let min = "deepfool(l2, 2) |> min(class, 0.5) |> lin |> weight(1)";
    for (reg, chunk, want) in [(avg, "3", 3), (avg, "0", 0), (avg, "8", 0), (min, "3", 0)] {
        let r = bench(&["--model", "lenet", "--batch", "8", "--input", "1x16x16", "--reg", reg, "--only", "amm", "--chunk", chunk]);
        r.ok();
        let v = r.json();
        assert_eq!(v["reg_chunk"], want, "{reg} --chunk {chunk}: {}", r.describe());
        assert!(num(&v, "amm_step_ms") > 0.0, "{}", r.describe());
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let cases: [(&[&str], &str); 5] = [
        (&["--batch", "0"], "--batch must be at least 1"),
        (&["--model", "mlp(widths=[0])", "--input", "1x8x8"], "a layer width of 0"),
        (&["--model", "lenet", "--input", "1x4x4"], "lenet needs inputs of at least 16×16 (got 4×4)"),
        (&["--dtype", "f16"], "--dtype f16: use f32 or f64"),
        (&["--reg", "deepfool(l2, 5) |> avg |> lin |> weigth(3)"], "did you mean `weight`?"),
    ];
    for (args, message) in cases {
        bench(args).fails().no_panic().stderr_has(message);
    }
}

/// The JSON names the GEMM kernel that ran: AMM_GEMM=gemm keeps the gemm crate; otherwise the
/// AVX-512 kernel runs exactly where the processor has AVX-512. Both give the same kind of step.
#[test]
fn names_the_gemm_kernel_and_amm_gemm_selects_it() {
    let args = ["bench", "--steps", "2", "--warmup", "1", "--json", "--model", "mlp(widths=[32])", "--batch", "8", "--input", "1x8x8"];
    let avx512 = std::fs::read_to_string("/proc/cpuinfo").map(|s| s.split_whitespace().any(|w| w == "avx512f")).unwrap_or(false);
    let default = amm(&repo(), &args);
    default.ok();
    let want = if avx512 && cfg!(target_arch = "x86_64") { "avx512" } else { "gemm-crate" };
    assert_eq!(default.json()["gemm"], want, "{}", default.describe());
    let o = command(&repo(), &args).env("AMM_GEMM", "gemm").output().unwrap();
    let forced: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(forced["gemm"], "gemm-crate");
    assert!(forced["amm_step_ms"].as_f64().unwrap() > 0.0);
}

/// Without the `cuda` feature, asking for a GPU says how to get one; a bad device name says what
/// is accepted.
#[test]
fn devices_without_cuda_are_clear_errors() {
    if cfg!(feature = "cuda") {
        return;
    }
    bench(&["--device", "cuda:0"])
        .fails()
        .no_panic()
        .stderr_has("this amm was built without CUDA; rebuild with `cargo build --release --features cuda`");
    bench(&["--device", "tpu"]).fails().no_panic().stderr_has("unknown device `tpu`: use cpu or cuda:N");
}

/// A misspelt AMM_GEMM or AMM_WINOGRAD is reported, not silently taken for a choice; the JSON
/// says which path the 3×3 convolutions took.
#[test]
fn an_unknown_kernel_switch_is_reported() {
    let args = ["bench", "--steps", "1", "--warmup", "0", "--json", "--model", "mlp(widths=[8])", "--batch", "2", "--input", "1x4x4"];
    let o = command(&repo(), &args).env("AMM_GEMM", "gemmm").output().unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("AMM_GEMM=gemmm is neither `gemm` nor `native`"), "{err}");
    let o = command(&repo(), &args).env("AMM_WINOGRAD", "yes").output().unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("AMM_WINOGRAD=yes is neither `off` nor `on`"), "{err}");
    let o = command(&repo(), &args).env("AMM_WINOGRAD", "off").output().unwrap();
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["conv3x3"], "im2col", "{json}");
}
