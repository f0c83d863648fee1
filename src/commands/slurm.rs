//! `--slurm`: a grid as a Slurm job array, one array task per missing cell, each running
//! `amm ... --cell $SLURM_ARRAY_TASK_ID`. Submitted job ids are kept in `<out>/slurm/jobs.txt`, so
//! `--status` can ask `squeue` about them and a re-submission skips cells still queued.
use super::cells::{cell_dir, state, State};
use super::flags::Common;
use amm_core::anyhow::{Context, Result};
use amm_core::dsl::Grid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn slurm_dir(grid: &Grid) -> PathBuf {
    PathBuf::from(&grid.cells[0].config.out).join("slurm")
}

/// This process's arguments without the scheduling flags, for the array tasks.
fn task_args() -> Vec<String> {
    let with_value = ["--jobs", "--cell", "--partition", "--time", "--cpus", "--max-parallel"];
    let bare = ["--slurm", "--dry-run", "--json", "--status", "--quiet", "-q"];
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if with_value.contains(&a.as_str()) {
            args.next();
        } else if !(bare.contains(&a.as_str()) || with_value.iter().any(|f| a.starts_with(&format!("{f}=")))) {
            out.push(a);
        }
    }
    out
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Cells (by index) that Slurm still has queued or running, from the recorded job ids.
pub fn queued_cells(grid: &Grid) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    let Ok(jobs) = std::fs::read_to_string(slurm_dir(grid).join("jobs.txt")) else { return out };
    let ids: Vec<&str> = jobs.lines().filter_map(|l| l.split_whitespace().next()).collect();
    if ids.is_empty() {
        return out;
    }
    let Ok(o) = Command::new("squeue").args(["-h", "-r", "-o", "%i %T", "-j", &ids.join(",")]).output() else { return out };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let mut it = line.split_whitespace();
        if let (Some(id), Some(st)) = (it.next(), it.next()) {
            if let Some(k) = id.split_once('_').and_then(|(_, t)| t.parse::<usize>().ok()) {
                out.insert(k, st.to_lowercase());
            }
        }
    }
    out
}

/// The sbatch script for `cells`.
pub fn script(grid: &Grid, c: &Common, cells: &[usize], cwd: &Path) -> Result<String> {
    let s = &c.slurm;
    let exe = std::env::current_exe()?;
    let logs = std::path::absolute(slurm_dir(grid))?;
    let array: Vec<String> = cells.iter().map(|k| k.to_string()).collect();
    let mut out = String::from("#!/bin/bash\n");
    out.push_str(&format!("#SBATCH --job-name=amm-{}\n", grid.cells[0].config.name));
    out.push_str(&format!("#SBATCH --array={}{}\n", array.join(","), s.max_parallel.map(|k| format!("%{k}")).unwrap_or_default()));
    out.push_str(&format!("#SBATCH --output={}/cell-%a.log\n", logs.display()));
    out.push_str(&format!("#SBATCH --cpus-per-task={}\n", s.cpus));
    out.push_str(&format!("#SBATCH --chdir={}\n", cwd.display()));
    if let Some(p) = &s.partition {
        out.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &s.time {
        out.push_str(&format!("#SBATCH --time={t}\n"));
    }
    out.push_str("# One array task per cell; a task resumes its cell from its checkpoint and skips it when done.\n");
    out.push_str("export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n");
    let args: Vec<String> = task_args().iter().map(|a| shell_quote(a)).collect();
    out.push_str(&format!("exec {} {} --cell \"$SLURM_ARRAY_TASK_ID\" --quiet\n", shell_quote(&exe.display().to_string()), args.join(" ")));
    Ok(out)
}

pub fn submit(grid: &Grid, c: &Common) -> Result<ExitCode> {
    let queued = queued_cells(grid);
    let missing: Vec<usize> = (0..grid.cells.len())
        .filter(|k| !queued.contains_key(k) && !matches!(state(&cell_dir(grid, &grid.cells[*k])), State::Done | State::Running))
        .collect();
    if missing.is_empty() {
        println!("nothing to submit: every cell is done, running or queued (`--status` lists them)");
        return Ok(ExitCode::SUCCESS);
    }
    let dir = slurm_dir(grid);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = script(grid, c, &missing, &std::env::current_dir()?)?;
    let path = dir.join(format!("array-{}.sbatch", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs()));
    amm_core::rundir::write_atomic(&path, text.as_bytes())?;
    let have_sbatch = Command::new("sbatch").arg("--version").output().is_ok_and(|o| o.status.success());
    if c.slurm.dry_run || !have_sbatch {
        print!("{text}");
        eprintln!(
            "{}wrote {} ({} cells); submit it with: sbatch {}",
            if have_sbatch { "" } else { "sbatch not found: " },
            path.display(),
            missing.len(),
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let o = Command::new("sbatch").arg("--parsable").arg(&path).output().context("running sbatch")?;
    if !o.status.success() {
        amm_core::anyhow::bail!("sbatch {} failed: {}", path.display(), String::from_utf8_lossy(&o.stderr).trim());
    }
    let id = String::from_utf8_lossy(&o.stdout).trim().split(';').next().unwrap_or("").to_string();
    let mut jobs = std::fs::read_to_string(dir.join("jobs.txt")).unwrap_or_default();
    jobs.push_str(&format!("{id} {}\n", missing.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",")));
    amm_core::rundir::write_atomic(&dir.join("jobs.txt"), jobs.as_bytes())?;
    println!("submitted job {id}: {} cells ({}); `--status` follows them", missing.len(), path.display());
    Ok(ExitCode::SUCCESS)
}
