//! The example spec files in `specs/` load, with the grid sizes their comments promise.

use std::path::Path;

use amm_dsl::{load_experiment, testing};

#[test]
fn example_specs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    for (file, cells) in [
        ("base-mnist.amm", 1),
        ("quickstart.amm", 2),
        ("deep-defense.amm", 1),
        ("fashion-mnist.amm", 2),
        ("paper/table1-mnist.amm", 7 * 3),
        ("paper/table2-hog.amm", 3 * 3),
        ("paper/fig4-train-size.amm", 4 * 2),
        ("paper/fig5-label-noise.amm", 4 * 2),
    ] {
        let grid = load_experiment(&root.join(file), &[], &testing::catalog()).unwrap_or_else(|d| panic!("{file}\n{d}"));
        assert_eq!(grid.cells.len(), cells, "{file}");
    }
    let grid = load_experiment(&root.join("paper/table1-mnist.amm"), &[], &testing::catalog()).unwrap();
    let c = &grid.cells[3].config;
    assert_eq!((c.name.as_str(), c.train.epochs, c.data.name.as_str()), ("table1-mnist", 100, "mnist"));
    assert_eq!(grid.files.len(), 2);
}
