//! Running the cells of a grid: in this process, in parallel child processes (`--jobs N`), one
//! cell at a time (`--cell K`, what children and Slurm array tasks run), or as a Slurm job array.
//!
//! A cell is done when its `result.json` exists (written atomically, last). Each running cell holds
//! an exclusive lock on `<cell>/.lock`, so two `amm` processes never run the same cell, and a cell
//! killed half-way resumes from its last checkpoint. Children exit as soon as their parent dies
//! (they watch their parent pid), so killing a grid with SIGKILL leaves nothing running.
use super::cells::{cell_dir, cell_name, state, try_lock, State};
use super::flags::Common;
use crate::progress::Display;
use amm_core::anyhow::{bail, Context, Result};
use amm_core::dsl::Grid;
use amm_core::rundir::{self, RESULT};
use amm_core::serde_json;
use amm_core::train::{self, RunOptions, RunResult};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Runs `grid` as the flags say.
pub fn execute(grid: &Grid, c: &Common) -> Result<ExitCode> {
    if let Ok(ppid) = std::env::var("AMM_GRID_PARENT") {
        watch_parent(ppid.parse().unwrap_or(0));
    }
    if c.status {
        return status(grid);
    }
    if c.slurm.slurm {
        return super::slurm::submit(grid, c);
    }
    if c.cell.is_none() {
        let again: Vec<String> = std::env::args().collect();
        let mut cmd = again.join(" ");
        if grid.cells.len() == 1 && !c.resume {
            cmd.push_str(" --resume");
        }
        interrupt::install(format!("to continue, run: {cmd}"));
    }
    if let Some(k) = c.cell {
        let Some(cell) = grid.cells.get(k) else { bail!("--cell {k}: the grid has {} cells (0..{})", grid.cells.len(), grid.cells.len()) };
        let r = run_cell(grid, k, c, "")?;
        if c.json {
            if let Some(r) = r {
                println!("{}", serde_json::to_string_pretty(&with_cell(&cell_name(cell), &r))?);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let failures = if c.jobs > 1 && grid.cells.len() > 1 { run_parallel(grid, c)? } else { run_sequential(grid, c)? };
    summarize(grid, c)?;
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Exits this process as soon as its parent (a grid scheduler) is gone.
fn watch_parent(ppid: u32) {
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != ppid {
            std::process::exit(137);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
}

/// Runs one cell here unless it is done or running elsewhere. `Ok(None)`: skipped.
fn run_cell(grid: &Grid, k: usize, c: &Common, label: &str) -> Result<Option<RunResult>> {
    let cell = &grid.cells[k];
    let dir = cell_dir(grid, cell);
    // What runs: a `cell:` init names the other cell's folder now.
    let config = super::finetune::resolved(grid, k)?;
    let name = cell_name(cell);
    let many = grid.cells.len() > 1;
    let damaged = if dir.join(RESULT).exists() { train::read_result(&dir.join(RESULT)).err() } else { None };
    if let Some(e) = damaged.filter(|_| many || c.resume || c.cell.is_some()) {
        // train::run moves it aside and finishes the run from its checkpoint.
        eprintln!("{label}{name}: {e:#}; running it again");
    } else if dir.join(RESULT).exists() && (many || c.resume || c.cell.is_some()) {
        // A finished run of another spec is not this cell's result: train::run says what differs.
        let same = std::fs::read_to_string(dir.join(rundir::SPEC))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|old| {
                rundir::json_diff(&rundir::identity(&old), &rundir::identity(&serde_json::to_value(&config).unwrap_or_default())).is_empty()
            });
        if !same {
            // train::run refuses, saying what differs.
            let device = super::host::device(&c.device)?;
            train::run(
                &config,
                &super::host::registry(),
                &RunOptions { out: dir.clone(), resume: true, device },
                &mut Display::new(c.quiet, label),
            )?;
        }
        if !c.quiet {
            eprintln!("{label}{name}: done already ({}), skipped", dir.display());
        }
        return Ok(Some(train::read_result(&dir.join(RESULT))?));
    }
    let Some(_lock) = try_lock(&dir)? else {
        if !c.quiet {
            eprintln!("{label}{name}: running in another process ({}), skipped", dir.display());
        }
        return Ok(None);
    };
    if !c.quiet && c.cell.is_none() {
        if many {
            eprintln!("{label}{name} -> {}", dir.display());
        } else {
            eprintln!("writing to {}", dir.display());
        }
    }
    // The thread count reaches candle only through RAYON_NUM_THREADS, which must not change
    // while threads run: a cell that asks for another count runs in a child process.
    let threads = config.train.threads;
    if threads > 0 && std::env::var("RAYON_NUM_THREADS").ok() != Some(threads.to_string()) {
        drop(_lock);
        return run_in_child(grid, k, c, threads);
    }
    interrupt::running(&name, &dir);
    let resume = c.resume || ((many || c.cell.is_some()) && (rundir::has_checkpoint(&dir) || dir.join(RESULT).exists()));
    let device = super::host::device(&c.device)?;
    let mut display = Display::new(c.quiet, label);
    // train::run writes failed.json itself once it has claimed the folder.
    let out = train::run(&config, &super::host::registry(), &RunOptions { out: dir.clone(), resume, device }, &mut display);
    interrupt::finished(&name);
    match out {
        Ok(r) => Ok(Some(r)),
        Err(e) if name.is_empty() => Err(e),
        Err(e) => Err(e.context(format!("cell {name} in {}", dir.display()))),
    }
}

/// Runs cell `k` as `amm ... --cell K` with `RAYON_NUM_THREADS=threads`, its output shown here.
fn run_in_child(grid: &Grid, k: usize, c: &Common, threads: usize) -> Result<Option<RunResult>> {
    let exe = std::env::current_exe()?;
    let mut args = child_args(k);
    if c.quiet {
        args.push("--quiet".into());
    }
    let status = Command::new(&exe)
        .args(&args)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    let dir = cell_dir(grid, &grid.cells[k]);
    if !status.success() {
        bail!("the cell's process ({threads} threads) failed ({status}); its output is above");
    }
    Ok(Some(train::read_result(&dir.join(RESULT))?))
}

fn run_sequential(grid: &Grid, c: &Common) -> Result<usize> {
    let mut failures = 0;
    for (i, k) in super::finetune::order(grid)?.into_iter().enumerate() {
        let label = if grid.cells.len() > 1 { format!("[{}/{}] ", i + 1, grid.cells.len()) } else { String::new() };
        if let Err(e) = run_cell(grid, k, c, &label) {
            if grid.cells.len() == 1 {
                return Err(e);
            }
            failures += 1;
            eprintln!("{label}FAILED: {e:#}");
        }
    }
    Ok(failures)
}

/// The command line of this process with `--jobs` removed and `--cell K` added.
fn child_args(k: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--jobs" || a == "--cell" {
            args.next();
        } else if !(a.starts_with("--jobs=") || a.starts_with("--cell=") || ["--json", "--quiet", "-q"].contains(&a.as_str())) {
            out.push(a);
        }
    }
    // Not --quiet: the child's progress (one line per epoch off a terminal) is its log.txt.
    out.extend(["--cell".to_string(), k.to_string()]);
    out
}

fn run_parallel(grid: &Grid, c: &Common) -> Result<usize> {
    let exe = std::env::current_exe()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / c.jobs).max(1);
    // Which cells are done: read from disk once, then updated as children finish.
    let mut done: Vec<bool> = grid.cells.iter().map(|cell| state(&cell_dir(grid, cell)) == State::Done).collect();
    let todo: Vec<usize> = super::finetune::order(grid)?.into_iter().filter(|&k| !done[k]).collect();
    let sources: Vec<Option<usize>> = (0..grid.cells.len()).map(|k| super::finetune::source(grid, k)).collect::<Result<_>>()?;
    if !c.quiet {
        eprintln!(
            "{} cells, {} to run, {} at a time with {threads} thread{} each (logs in each cell's log.txt)",
            grid.cells.len(),
            todo.len(),
            c.jobs,
            if threads == 1 { "" } else { "s" }
        );
    }
    let mut running: Vec<(usize, std::process::Child)> = Vec::new();
    let mut queue = todo;
    let (mut failures, mut finished) = (0, 0);
    let total = grid.cells.len();
    loop {
        // A cell that fine-tunes from another waits until that one is done; if it failed, so does this.
        let waiting: Vec<usize> = running.iter().map(|(k, _)| *k).chain(queue.iter().copied()).collect();
        queue.retain(|&k| match sources[k] {
            Some(j) if !done[j] && !waiting.contains(&j) => {
                failures += 1;
                finished += 1;
                eprintln!("[{finished}/{total}] {}: FAILED (it starts from cell {j}, which did not finish)", cell_name(&grid.cells[k]));
                false
            }
            _ => true,
        });
        while running.len() < c.jobs {
            let Some(pos) = queue.iter().position(|&k| sources[k].is_none_or(|j| done[j])) else { break };
            let k = queue.remove(pos);
            let dir = cell_dir(grid, &grid.cells[k]);
            std::fs::create_dir_all(&dir)?;
            // Appended: a resumed cell keeps the log of its earlier attempts.
            let log = File::options().create(true).append(true).open(dir.join("log.txt"))?;
            let mut cmd = Command::new(&exe);
            cmd.args(child_args(k))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .env("AMM_GRID_PARENT", std::process::id().to_string());
            let own = grid.cells[k].config.train.threads;
            cmd.env("RAYON_NUM_THREADS", if own > 0 { own } else { threads }.to_string());
            interrupt::running(&cell_name(&grid.cells[k]), &dir);
            running.push((k, cmd.spawn().with_context(|| format!("starting {}", exe.display()))?));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].1.try_wait()? {
                let (k, _) = running.remove(i);
                finished += 1;
                let name = cell_name(&grid.cells[k]);
                interrupt::finished(&name);
                if status.success() {
                    let st = state(&cell_dir(grid, &grid.cells[k]));
                    done[k] = st == State::Done;
                    if !c.quiet {
                        eprintln!("[{finished}/{total}] {name}: {}", st.name());
                    }
                } else {
                    failures += 1;
                    let dir = cell_dir(grid, &grid.cells[k]);
                    // A full disk may have swallowed the child's own message: say it here.
                    let disk = match free_bytes(&dir) {
                        Some(b) if b < 16 << 20 => format!(" (the disk holding {} is full: {} KiB free)", dir.display(), b >> 10),
                        _ => String::new(),
                    };
                    eprintln!("[{finished}/{total}] {name}: FAILED ({status}){disk}; see {}", dir.join("log.txt").display());
                }
            } else {
                i += 1;
            }
        }
    }
    Ok(failures)
}

/// Free bytes on the file system holding `dir` (None if it cannot be asked).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// What Ctrl-C reports: the cells running when it came, and how to continue them.
mod interrupt {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static RUNNING: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

    pub fn running(name: &str, dir: &Path) {
        if let Ok(mut r) = RUNNING.lock() {
            r.push((name.to_string(), dir.to_path_buf()));
        }
    }

    pub fn finished(name: &str) {
        if let Ok(mut r) = RUNNING.lock() {
            r.retain(|(n, _)| n != name);
        }
    }

    /// Installs the Ctrl-C handler (once). Children of `--jobs` get the signal too and stop; every
    /// cell keeps its last finished epoch.
    pub fn install(resume_hint: String) {
        let _ = ctrlc::set_handler(move || {
            let r = RUNNING.lock().map(|r| r.clone()).unwrap_or_default();
            let mut msg = String::from("\ninterrupted");
            if r.is_empty() {
                msg.push_str(": no cell was running");
            } else {
                msg.push_str(&format!(
                    "; {} stopped, keeping its last finished epoch:",
                    if r.len() == 1 { "this cell" } else { "these cells" }
                ));
                for (n, d) in &r {
                    msg.push_str(&format!("\n  {}{}", if n.is_empty() { String::new() } else { format!("{n}  ") }, d.display()));
                }
            }
            msg.push_str(&format!("\n{resume_hint}\n"));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
            std::process::exit(130);
        });
    }
}

fn status(grid: &Grid) -> Result<ExitCode> {
    let mut counts = std::collections::BTreeMap::new();
    let queued = super::slurm::queued_cells(grid);
    for (k, cell) in grid.cells.iter().enumerate() {
        let dir = cell_dir(grid, cell);
        let st = state(&dir);
        let mut s = st.name().to_string();
        if let Some(q) = queued.get(&k) {
            s = format!("{s} (slurm: {q})");
        }
        *counts.entry(st.name()).or_insert(0) += 1;
        println!("{k:>4}  {s:<12}  {}  {}", cell_name(cell), dir.display());
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{} cells: {}", grid.cells.len(), summary.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn summarize(grid: &Grid, c: &Common) -> Result<()> {
    let mut results = Vec::new();
    for cell in &grid.cells {
        let p = cell_dir(grid, cell).join(RESULT);
        if p.exists() {
            match train::read_result(&p) {
                Ok(r) => results.push((cell_name(cell), r)),
                Err(e) => eprintln!("warning: {e:#}; left out (the next run of this grid moves it aside and reruns the cell)"),
            }
        }
    }
    if c.json {
        let objs: Vec<_> = results.iter().map(|(n, r)| with_cell(n, r)).collect();
        if grid.cells.len() == 1 {
            if let Some(o) = objs.first() {
                println!("{}", serde_json::to_string_pretty(o)?);
            }
        } else {
            println!("{}", serde_json::to_string_pretty(&objs)?);
        }
    } else {
        print_table(&results);
    }
    if grid.cells.len() > 1 {
        let out = PathBuf::from(&grid.cells[0].config.out);
        let dirs: Vec<(String, PathBuf)> = grid.cells.iter().map(|cell| (cell_name(cell), cell_dir(grid, cell))).collect();
        match crate::results::plot::runs_convergence(&out, "summary", &dirs) {
            Ok(files) if !c.quiet && !files.is_empty() => eprintln!("plot: {}", files[0].display()),
            Ok(_) => {}
            Err(e) => eprintln!("warning: could not write the plot: {e:#}"),
        }
    }
    Ok(())
}

fn with_cell(name: &str, r: &RunResult) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("cell".into(), serde_json::Value::String(name.to_string()));
    }
    v
}

fn print_table(results: &[(String, RunResult)]) {
    if results.is_empty() {
        return;
    }
    let w = results.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    println!("{:<w$}  {:>10}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}", "run", "test err", "margin", "median", "min", "DF ok", "train s");
    for (n, r) in results {
        println!(
            "{:<w$}  {:>9.2}%  {:>8.4}  {:>8.4}  {:>8.4}  {:>8.1}%  {:>9.1}",
            if n.is_empty() { &r.name } else { n },
            100.0 * r.test_error,
            r.margin,
            r.margin_median,
            r.margin_min,
            100.0 * r.attack_success,
            r.train_seconds
        );
    }
}
