//! The example spec files in `specs/` load, with the grid sizes their comments promise.

use std::path::Path;

use amm_dsl::{load_experiment, testing};

#[test]
fn example_specs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    for (file, cells) in [
        ("quickstart.amm", 2),
        ("deep-defense.amm", 1),
        ("paper/base.amm", 1),
        ("paper/table1.amm", 7 * 3),
        ("paper/table2.amm", 2 * 3),
        ("paper/fig1.amm", 4 * 3),
        ("paper/fig4.amm", 3 * 2 * 3),
        ("paper/fig5.amm", 4 * 2 * 3),
        ("paper/tune.amm", 1 + 3 * 2 * 3),
    ] {
        let grid = load_experiment(&root.join(file), &[], &testing::catalog()).unwrap_or_else(|d| panic!("{file}\n{d}"));
        assert_eq!(grid.cells.len(), cells, "{file}");
    }
    let grid = load_experiment(&root.join("paper/table1.amm"), &[], &testing::catalog()).unwrap();
    let c = &grid.cells[3].config;
    assert_eq!((c.name.as_str(), c.train.epochs, c.data.name.as_str()), ("table1", 8, "fashion-mnist"));
    assert_eq!(grid.files.len(), 2);
}
