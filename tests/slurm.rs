//! `amm grid --slurm` against a real single-node Slurm (tools/slurm-single-node.sh). Runs when
//! the daemons can be started here (root, Debian's slurmctld/slurmd/slurm-client/munge
//! installed, as .ci/run does); otherwise it says why and skips.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Slurm {
    dir: PathBuf,
}

impl Slurm {
    fn start(dir: &Path) -> Result<Slurm, String> {
        for tool in ["slurmctld", "slurmd", "sbatch", "squeue", "munged"] {
            let found = Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
                .output()
                .map(|o| o.status.success());
            if !found.unwrap_or(false) {
                return Err(format!("`{tool}` is not installed (apt-get install -y slurmctld slurmd slurm-client munge)"));
            }
        }
        let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        if uid != "0" {
            return Err("the daemons need root".into());
        }
        let o = Command::new(script()).arg("start").arg(dir).output().map_err(|e| e.to_string())?;
        if !o.status.success() {
            let _ = Command::new(script()).arg("stop").arg(dir).env("SLURM_CONF", dir.join("slurm.conf")).output();
            return Err(format!("the daemons did not start: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(Slurm { dir: dir.to_path_buf() })
    }
    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
    fn queue_empty(&self) -> bool {
        let o = Command::new("squeue").arg("-h").env("SLURM_CONF", self.conf()).output().unwrap();
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim().is_empty()
    }
    fn wait_empty(&self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.queue_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    }
}

impl Drop for Slurm {
    /// Cancels every job, waits for an empty queue, stops the daemons.
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).env("SLURM_CONF", self.conf()).output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/slurm-single-node.sh")
}

fn amm(slurm: &Slurm) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amm"));
    c.env("SLURM_CONF", slurm.conf());
    c
}

#[test]
fn grid_runs_as_a_slurm_job_array_and_resubmits_only_missing_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let slurm = match Slurm::start(&tmp.path().join("slurm")) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: no single-node Slurm here: {why}");
            return;
        }
    };
    let spec = tmp.path().join("toy.amm");
    let out = tmp.path().join("out");
    std::fs::write(
        &spec,
        format!(
            "[experiment]\nout = \"{}\"\nseeds = [0, 1]\n[data]\nname = toy2d\n[model]\narch = linear\n[train]\nepochs = 3\nbatch = 20\nlr = 0.1\nloss = none\n\
             [reg]\npipeline = deepfool(l2, 5) |> {{avg, min(class, 0.2)}} |> exp(c=2, d=1)\n[eval]\nlong_iters = 0\n",
            out.display()
        ),
    )
    .unwrap();
    let st = amm(&slurm)
        .arg("grid")
        .arg(&spec)
        .args(["--slurm", "--cpus", "1", "--max-parallel", "2"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success() && stdout.contains("submitted job"), "{stdout}{}", String::from_utf8_lossy(&st.stderr));
    let script_text: String = std::fs::read_dir(out.join("slurm"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "sbatch"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(script_text.contains("#SBATCH --array=0,1,2,3%2"), "{script_text}");
    assert!(script_text.contains("--cell \"$SLURM_ARRAY_TASK_ID\""), "{script_text}");
    assert!(slurm.wait_empty(Duration::from_secs(120)), "the array did not finish");
    let status = amm(&slurm).arg("grid").arg(&spec).arg("--status").current_dir(tmp.path()).output().unwrap();
    let s = String::from_utf8_lossy(&status.stdout);
    assert!(s.contains("4 cells: 4 done"), "{s}\nlogs: {:?}", std::fs::read_to_string(out.join("slurm/cell-0.log")));

    // Re-submitting submits only the missing cell.
    let cells: Vec<PathBuf> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("result.json").exists()).collect();
    std::fs::remove_dir_all(&cells[0]).unwrap();
    let st = amm(&slurm).arg("grid").arg(&spec).args(["--slurm", "--cpus", "1"]).current_dir(tmp.path()).output().unwrap();
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("submitted job") && String::from_utf8_lossy(&st.stdout).contains(": 1 cells"),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    assert!(slurm.wait_empty(Duration::from_secs(120)));
    let status = amm(&slurm).arg("grid").arg(&spec).arg("--status").current_dir(tmp.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("4 cells: 4 done"));
    // Nothing left to do.
    let st = amm(&slurm).arg("grid").arg(&spec).arg("--slurm").current_dir(tmp.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("nothing to submit"));
}
